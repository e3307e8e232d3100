//! The session ticket (SPEC 7, oauth2-proxy's "ticket" design): the cookie value is
//! `<id>.<secret>`; the store key is derived from the id and the record is sealed with
//! the secret, so a copy of the store yields neither a usable cookie nor a token.

use crate::crypto::{self, CryptoError};

const ID_LEN: usize = 16;
const SECRET_LEN: usize = 32;

/// The two random halves of a session cookie.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionTicket {
    id: [u8; ID_LEN],
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for SessionTicket {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SessionTicket(***)")
    }
}

impl SessionTicket {
    /// A fresh ticket: 128 random bits of id and 256 random bits of secret.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self {
            id: crypto::random_bytes()?,
            secret: crypto::random_bytes()?,
        })
    }

    /// Reads a cookie value; `None` for anything that is not a well-formed ticket.
    pub fn parse(cookie_value: &str) -> Option<Self> {
        let (id, secret) = cookie_value.split_once('.')?;
        let id = crypto::b64_decode_array::<ID_LEN>(id)?;
        let secret = crypto::b64_decode_array::<SECRET_LEN>(secret)?;
        Some(Self { id, secret })
    }

    /// The cookie value.
    pub fn cookie_value(&self) -> String {
        format!("{}.{}", crypto::b64(&self.id), crypto::b64(&self.secret))
    }

    /// The store key of this session: never equal to, nor reversible into, the cookie.
    pub fn storage_key(&self, prefix: &str) -> String {
        format!("{}{}", session_keys(prefix), self.storage_name())
    }

    /// The part of [`Self::storage_key`] after [`session_keys`] (what the back-channel
    /// indexes list: 43 characters, short enough for Redis's compact sorted sets).
    pub fn storage_name(&self) -> String {
        crypto::derive_name("session-id", &self.id)
    }

    /// The key that seals this session's record.
    pub fn secret(&self) -> &[u8; SECRET_LEN] {
        &self.secret
    }
}

/// What every session's store key starts with under `prefix`.
pub fn session_keys(prefix: &str) -> String {
    format!("{prefix}session:")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_ticket_survives_the_cookie_round_trip() {
        let ticket = SessionTicket::generate().unwrap();
        let parsed = SessionTicket::parse(&ticket.cookie_value()).unwrap();
        assert_eq!(parsed, ticket);
        assert!(!ticket.storage_key("p:").contains(&ticket.cookie_value()));
    }

    #[test]
    fn malformed_cookie_values_are_no_ticket() {
        for value in ["", ".", "abc", "abc.def", "a.b.c", "%%%.%%%"] {
            assert!(SessionTicket::parse(value).is_none(), "{value}");
        }
    }
}
