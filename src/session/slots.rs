//! Single-use, expiring records addressed by a secret handle (a login's `state`, a
//! logout's `state`): stored sealed under a key derived from the handle and taken with
//! GETDEL, so any instance can finish what another started, and only once.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto;
use crate::error::{ApiError, InternalError};
use crate::observed_store::ObservedStore;
use crate::store::KeyValueStore;

/// One kind of single-use record (e.g. pending logins).
#[derive(Clone)]
pub struct SealedSlots {
    store: ObservedStore,
    prefix: String,
    kind: &'static str,
}

impl SealedSlots {
    /// Records of `kind` under `prefix`.
    pub fn new(store: ObservedStore, prefix: &str, kind: &'static str) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
            kind,
        }
    }

    /// Stores `value` for `ttl` under the secret `handle`.
    pub async fn put<T: Serialize>(
        &self,
        handle: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), ApiError> {
        let key = self.key(handle);
        let plain = serde_json::to_vec(value).map_err(|source| InternalError::Serialize {
            what: "a pending login or logout",
            source,
        })?;
        let sealed = crypto::seal(&self.sealing_key(handle), key.as_bytes(), &plain)?;
        self.store.set(&key, &sealed, ttl).await?;
        Ok(())
    }

    /// Removes and returns the record of `handle`; `None` if unknown, used or expired.
    pub async fn take<T: DeserializeOwned>(&self, handle: &str) -> Result<Option<T>, ApiError> {
        let key = self.key(handle);
        let Some(sealed) = self.store.take(&key).await? else {
            return Ok(None);
        };
        Ok(
            crypto::open(&self.sealing_key(handle), key.as_bytes(), sealed)
                .and_then(|plain| serde_json::from_slice(&plain).ok()),
        )
    }

    fn key(&self, handle: &str) -> String {
        let name = crypto::derive_name(self.kind, handle.as_bytes());
        format!("{}{}:{name}", self.prefix, self.kind)
    }

    fn sealing_key(&self, handle: &str) -> [u8; 32] {
        crypto::derive_key(&format!("{}-seal", self.kind), handle.as_bytes())
    }
}

/// Longest login cookie value we set. Browsers keep a cookie of up to 4096 bytes of
/// name, value and attributes together (RFC 6265 6.1); a longer one is dropped silently.
pub const MAX_LOGIN_COOKIE_VALUE: usize = 3800;

/// Pending logins carried by the browser (SPEC 7: an unauthenticated `/login` stores
/// nothing), the design of mod_auth_openidc's state cookie:
///
/// - `/login` seals the pending login (AES-256-GCM) under a key derived from its
///   `state` (256 random bits, known only to the browser's URL and this cookie) and
///   hands it to the browser in a cookie named after a hash of the state. Any instance
///   can open it at `/callback`, with no shared secret and no store write.
/// - Whoever lacks the cookie (another browser, a leaked callback URL, the provider's
///   logs) cannot open it; whoever has both built it through `/login` and could only
///   seal what they could have asked for anyway, so what is opened is re-checked (the
///   provider is looked up, `returnURL` parsed again by the caller).
/// - Single use: at `/callback`, once the login has succeeded and before the session is
///   created, a small marker (`SET NX`, living until the state expires) claims the state;
///   a second claim fails. Only completed logins write it, so its cost is bounded by
///   real logins, not by requests.
#[derive(Clone)]
pub struct PendingLogins {
    store: ObservedStore,
    prefix: String,
    lifetime: Duration,
}

/// Why a pending login cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingLoginRefused {
    /// The request carries no login cookie for this state: another browser started it,
    /// the state is made up, or the cookie expired.
    #[error("no login cookie for this state (unknown state, another browser, or expired)")]
    Missing,
    /// The cookie does not open with this state (tampered, or another state's).
    #[error("the login cookie does not open for this state")]
    DoesNotOpen,
    /// The sealed login is older than the state lifetime.
    #[error("the login expired")]
    Expired,
    /// The state was already used by a finished login (replay).
    #[error("the state was already used")]
    AlreadyUsed,
}

impl PendingLoginRefused {
    /// The check that failed, for the WARN line.
    pub fn check(self) -> &'static str {
        match self {
            Self::Missing | Self::DoesNotOpen => "login cookie",
            Self::Expired => "state lifetime",
            Self::AlreadyUsed => "state single use",
        }
    }

    /// Why, for people (the log line and `errorMessage`).
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "the login is unknown, expired, or was started in another browser",
            Self::DoesNotOpen => "the login cookie does not belong to this login",
            Self::Expired => "the login expired",
            Self::AlreadyUsed => "the login was already finished",
        }
    }
}

/// Additional data of the seal: what the sealed bytes are for.
const AAD: &[u8] = b"pending-login";

/// What the cookie holds: the login and when it stops being valid.
#[derive(Serialize, serde::Deserialize)]
struct Envelope<T> {
    /// Unix seconds after which the login is refused, whatever the cookie's Max-Age.
    exp: i64,
    /// The pending login.
    login: T,
}

impl PendingLogins {
    /// Logins that live `lifetime`, single-use markers under `prefix` in `store`.
    pub fn new(store: ObservedStore, prefix: &str, lifetime: Duration) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
            lifetime,
        }
    }

    /// How long a login may take.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The cookie value carrying `login` for `state`, sealed with `nonce` (fresh from the
    /// CSPRNG, drawn with the state). A login too large for a cookie (its `returnURL` is
    /// too long) is `REDIRECT_NOT_ALLOWED`.
    pub fn seal<T: Serialize>(
        &self,
        state: &str,
        nonce: [u8; crypto::SEAL_NONCE_LEN],
        login: &T,
        now: i64,
    ) -> Result<String, ApiError> {
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        let envelope = Envelope {
            exp: now.saturating_add(lifetime),
            login,
        };
        let plain = serde_json::to_vec(&envelope).map_err(|source| InternalError::Serialize {
            what: "a pending login",
            source,
        })?;
        let value = crypto::b64(&crypto::seal_with_nonce(
            &Self::key(state),
            nonce,
            AAD,
            &plain,
        )?);
        if value.len() > MAX_LOGIN_COOKIE_VALUE {
            tracing::warn!(
                check = "login cookie size",
                bytes = value.len(),
                "login refused: the returnURL is too long to travel in the login cookie"
            );
            return Err(ApiError::RedirectNotAllowed);
        }
        Ok(value)
    }

    /// Opens the login cookie `value` of `state`; `Err` says which check failed.
    /// Returns the login and the Unix second it expires.
    pub fn open<T: DeserializeOwned>(
        &self,
        state: &str,
        value: Option<&str>,
        now: i64,
    ) -> Result<(T, i64), PendingLoginRefused> {
        let value = value.ok_or(PendingLoginRefused::Missing)?;
        if value.len() > MAX_LOGIN_COOKIE_VALUE {
            return Err(PendingLoginRefused::DoesNotOpen);
        }
        let sealed = crypto::b64_decode(value).ok_or(PendingLoginRefused::DoesNotOpen)?;
        let plain =
            crypto::open(&Self::key(state), AAD, sealed).ok_or(PendingLoginRefused::DoesNotOpen)?;
        let envelope: Envelope<T> =
            serde_json::from_slice(&plain).map_err(|_| PendingLoginRefused::DoesNotOpen)?;
        if envelope.exp <= now {
            return Err(PendingLoginRefused::Expired);
        }
        Ok((envelope.login, envelope.exp))
    }

    /// Claims `state` for the one login that may finish with it (until `expires_at`,
    /// Unix seconds). `Err(AlreadyUsed)` on a second claim; store failures are `ApiError`s.
    pub async fn claim(
        &self,
        state: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Result<(), PendingLoginRefused>, ApiError> {
        let key = format!(
            "{}login-used:{}",
            self.prefix,
            crypto::derive_name("login-used", state.as_bytes())
        );
        let remaining = u64::try_from(expires_at.saturating_sub(now)).unwrap_or(0);
        let ttl = Duration::from_secs(remaining.max(1));
        let first = self.store.set_if_absent(&key, b"1", ttl).await?;
        Ok(if first {
            Ok(())
        } else {
            Err(PendingLoginRefused::AlreadyUsed)
        })
    }

    fn key(state: &str) -> [u8; 32] {
        crypto::derive_key("login-seal", state.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{AnyStore, MemoryStore};

    fn logins() -> PendingLogins {
        let counter = prometheus::IntCounter::new("errors", "errors").unwrap();
        let store = ObservedStore::new(AnyStore::Memory(MemoryStore::new()), counter);
        PendingLogins::new(store, "t:", Duration::from_secs(600))
    }

    #[test]
    fn a_sealed_login_opens_only_with_its_state_before_it_expires() {
        let logins = logins();
        let value = logins.seal("state-a", [1; 12], &"payload", 1000).unwrap();
        assert!(!value.contains("payload"));
        let (login, exp): (String, i64) = logins.open("state-a", Some(&value), 1599).unwrap();
        assert_eq!((login.as_str(), exp), ("payload", 1600));
        let open = |state: &str, value: Option<&str>, now: i64| {
            logins.open::<String>(state, value, now).unwrap_err()
        };
        assert_eq!(
            open("state-b", Some(&value), 1000),
            PendingLoginRefused::DoesNotOpen
        );
        assert_eq!(
            open("state-a", Some("!!"), 1000),
            PendingLoginRefused::DoesNotOpen
        );
        assert_eq!(
            open("state-a", Some(""), 1000),
            PendingLoginRefused::DoesNotOpen
        );
        assert_eq!(open("state-a", None, 1000), PendingLoginRefused::Missing);
        assert_eq!(
            open("state-a", Some(&value), 1600),
            PendingLoginRefused::Expired
        );
        let mut tampered = crypto::b64_decode(&value).unwrap();
        tampered[20] ^= 1;
        assert_eq!(
            open("state-a", Some(&crypto::b64(&tampered)), 1000),
            PendingLoginRefused::DoesNotOpen
        );
    }

    #[test]
    fn a_login_too_large_for_a_cookie_is_refused() {
        let logins = logins();
        let big = "a".repeat(MAX_LOGIN_COOKIE_VALUE);
        assert_eq!(
            logins.seal("s", [2; 12], &big, 0).unwrap_err().code(),
            "REDIRECT_NOT_ALLOWED"
        );
        assert!(logins.seal("s", [3; 12], &"a".repeat(2048), 0).is_ok());
    }

    #[actix_web::test]
    async fn a_state_can_be_claimed_once() {
        let logins = logins();
        assert_eq!(logins.claim("s", 1600, 1000).await.unwrap(), Ok(()));
        assert_eq!(
            logins.claim("s", 1600, 1000).await.unwrap(),
            Err(PendingLoginRefused::AlreadyUsed)
        );
        assert_eq!(logins.claim("other", 1600, 1000).await.unwrap(), Ok(()));
    }
}
