//! What a session holds: who the user is (already mapped to the userinfo shape) and the
//! provider's tokens. Stored sealed; see [`super::SessionService`].
//!
//! Stored form (format 1): a version byte, then length-prefixed fields. JWTs are kept as
//! their three decoded base64url parts (a quarter smaller than the text, and cheaper to
//! open than JSON); the profile, whose attributes are free-form JSON, is kept as JSON.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::InternalError;

/// First byte of the stored form; anything else (e.g. the older JSON records) is unreadable.
const FORMAT: u8 = 1;

/// One logged-in browser session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Id of the provider the user logged in with.
    pub provider: String,
    /// The provider's `sub`.
    pub subject: String,
    /// The provider's session id (`sid` claim), for back-channel logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user as `/userinfo` shows them.
    pub profile: Profile,
    /// Unix milliseconds of login.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last idle-timer touch.
    pub last_touch_ms: i64,
    /// Tokens from the provider.
    pub tokens: ProviderTokens,
}

/// Name, roles, groups and attributes mapped from the configured claim paths.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    /// Display name (`name_claim`, falling back to `sub`).
    pub name: String,
    /// Roles (`roles_claim`).
    pub roles: Vec<String>,
    /// Groups (`groups_claim`).
    pub groups: Vec<String>,
    /// Configured `attributes` that the provider sent.
    pub attributes: Map<String, Value>,
}

/// The provider's tokens for this session.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ProviderTokens {
    /// The raw ID token (for `id_token_hint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Unix seconds when the access token expires, when the provider said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_expires_at: Option<i64>,
    /// Unix seconds when the access token was obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_issued_at: Option<i64>,
    /// The refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for ProviderTokens {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProviderTokens")
            .field("id_token", &self.id_token.as_ref().map(|_| "***"))
            .field("access_token", &self.access_token.as_ref().map(|_| "***"))
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SessionRecord {
    /// The stored (plaintext) form.
    pub fn encode(&self) -> Result<Vec<u8>, InternalError> {
        let profile =
            serde_json::to_string(&self.profile).map_err(|source| InternalError::Serialize {
                what: "a session",
                source,
            })?;
        let tokens = &self.tokens;
        let mut out = Vec::with_capacity(256 + profile.len() + tokens_len(tokens));
        out.push(FORMAT);
        put_str(&mut out, &self.provider);
        put_str(&mut out, &self.subject);
        put_option(&mut out, self.sid.as_deref(), put_str);
        out.extend_from_slice(&self.created_at_ms.to_le_bytes());
        out.extend_from_slice(&self.last_touch_ms.to_le_bytes());
        put_str(&mut out, &profile);
        put_option(&mut out, tokens.id_token.as_deref(), put_token);
        put_option(&mut out, tokens.access_token.as_deref(), put_token);
        put_option(&mut out, tokens.access_token_expires_at, put_i64);
        put_option(&mut out, tokens.access_token_issued_at, put_i64);
        put_option(&mut out, tokens.refresh_token.as_deref(), put_token);
        Ok(out)
    }

    /// Reads the stored form; `None` when it is not one.
    pub fn decode(plain: &[u8]) -> Option<Self> {
        let mut input = Reader(plain);
        if input.byte()? != FORMAT {
            return None;
        }
        let provider = input.string()?;
        let subject = input.string()?;
        let sid = input.option(Reader::string)?;
        let created_at_ms = input.i64()?;
        let last_touch_ms = input.i64()?;
        let profile = serde_json::from_slice(input.bytes()?).ok()?;
        let tokens = ProviderTokens {
            id_token: input.option(Reader::token)?,
            access_token: input.option(Reader::token)?,
            access_token_expires_at: input.option(Reader::i64)?,
            access_token_issued_at: input.option(Reader::i64)?,
            refresh_token: input.option(Reader::token)?,
        };
        input.0.is_empty().then_some(Self {
            provider,
            subject,
            sid,
            profile,
            created_at_ms,
            last_touch_ms,
            tokens,
        })
    }
}

// The stored form is a handful of length-prefixed fields in a fixed order; a general
// binary serde format (postcard) would change serde's features and rebuild every crate
// that uses it for the same bytes.

/// Token kinds in the stored form.
const TEXT: u8 = 0;
const JWS: u8 = 1;

fn tokens_len(tokens: &ProviderTokens) -> usize {
    [
        &tokens.id_token,
        &tokens.access_token,
        &tokens.refresh_token,
    ]
    .iter()
    .map(|token| token.as_ref().map_or(0, String::len))
    .sum()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths above u32 cannot occur: a session record is a few kilobytes.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_option<T>(out: &mut Vec<u8>, value: Option<T>, put: fn(&mut Vec<u8>, T)) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put(out, value);
        }
    }
}

/// A JWS compact serialisation as its three decoded parts (only when encoding them
/// again gives back exactly `text`), anything else as text.
fn put_token(out: &mut Vec<u8>, text: &str) {
    if let Some(parts) = jws_parts(text) {
        out.push(JWS);
        for part in &parts {
            put_bytes(out, part);
        }
    } else {
        out.push(TEXT);
        put_str(out, text);
    }
}

fn jws_parts(text: &str) -> Option<[Vec<u8>; 3]> {
    let mut parts = text.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let decoded = [
        URL_SAFE_NO_PAD.decode(header).ok()?,
        URL_SAFE_NO_PAD.decode(payload).ok()?,
        URL_SAFE_NO_PAD.decode(signature).ok()?,
    ];
    let text_len = decoded.iter().map(|part| b64_len(part)).sum::<usize>() + 2;
    (text_len == text.len()).then_some(decoded)
}

/// Length of the unpadded base64 text of `bytes`.
fn b64_len(bytes: &[u8]) -> usize {
    (bytes.len() * 4).div_ceil(3)
}

/// Reads the stored form front to back; every read is `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        let (&byte, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(byte)
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        self.take(usize::try_from(len).ok()?)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    /// `Some(None)` for an absent value, `None` for a malformed one.
    fn option<T>(&mut self, read: fn(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.byte()? {
            0 => Some(None),
            1 => read(self).map(Some),
            _ => None,
        }
    }

    fn token(&mut self) -> Option<String> {
        match self.byte()? {
            TEXT => self.string(),
            JWS => {
                let parts = [self.bytes()?, self.bytes()?, self.bytes()?];
                let mut text = String::with_capacity(
                    parts.iter().map(|part| b64_len(part)).sum::<usize>() + 2,
                );
                for (index, part) in parts.iter().enumerate() {
                    if index > 0 {
                        text.push('.');
                    }
                    URL_SAFE_NO_PAD.encode_string(part, &mut text);
                }
                Some(text)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(id_token: &str) -> SessionRecord {
        let mut attributes = Map::new();
        attributes.insert("email".to_owned(), Value::from("a@example.org"));
        SessionRecord {
            provider: "local".to_owned(),
            subject: "alice".to_owned(),
            sid: Some("sid-1".to_owned()),
            profile: Profile {
                name: "Alice".to_owned(),
                roles: vec!["admin".to_owned()],
                groups: vec![],
                attributes,
            },
            created_at_ms: 1,
            last_touch_ms: 2,
            tokens: ProviderTokens {
                id_token: Some(id_token.to_owned()),
                access_token: Some("opaque-token".to_owned()),
                access_token_expires_at: Some(3),
                access_token_issued_at: None,
                refresh_token: Some("a.b".to_owned()),
            },
        }
    }

    #[test]
    fn records_survive_the_stored_form_and_jwts_shrink() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLQ";
        for token in [jwt, "not.a-jws.==", "a.b.c.d", "x", ""] {
            let original = record(token);
            let stored = original.encode().unwrap();
            let back = SessionRecord::decode(&stored).unwrap();
            assert_eq!(format!("{back:?}"), format!("{original:?}"));
            assert_eq!(back.tokens.id_token.as_deref(), Some(token));
            assert_eq!(back.tokens.refresh_token.as_deref(), Some("a.b"));
            assert_eq!(back.profile.attributes, original.profile.attributes);
        }
        let json = serde_json::to_vec(&record(jwt)).unwrap();
        assert!(record(jwt).encode().unwrap().len() < json.len() * 3 / 4);
    }

    #[test]
    fn other_stored_forms_are_unreadable() {
        let json = serde_json::to_vec(&record("x")).unwrap();
        assert!(SessionRecord::decode(&json).is_none());
        assert!(SessionRecord::decode(&[]).is_none());
        assert!(SessionRecord::decode(&[FORMAT, 0xff]).is_none());
    }
}
