//! What a session holds: who the user is (already mapped to the userinfo shape) and the
//! provider's tokens. Stored sealed; see [`super::SessionService`].
//!
//! Stored form (format 1): a version byte, then length-prefixed fields. JWTs are kept as
//! their three decoded base64url parts (a quarter smaller than the text, and cheaper to
//! open than JSON); the profile, whose attributes are free-form JSON, is kept as JSON.
//! The tokens come last and are read only when a request asks for them ([`StoredTokens`]):
//! most requests (`/userinfo`, a cached service token) never do.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::InternalError;

/// First byte of the stored form; anything else (e.g. the older JSON records) is unreadable.
const FORMAT: u8 = 1;

/// One logged-in browser session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Id of the provider the user logged in with.
    pub provider: String,
    /// The provider's `sub`.
    pub subject: String,
    /// The provider's session id (`sid` claim), for back-channel logout.
    pub sid: Option<String>,
    /// The user as `/userinfo` shows them.
    pub profile: StoredProfile,
    /// Unix milliseconds of login.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last idle-timer touch.
    pub last_touch_ms: i64,
    /// Tokens from the provider.
    pub tokens: StoredTokens,
}

/// The provider's tokens of a session, read from the stored form on first use and written
/// back byte for byte while nobody replaced them.
#[derive(Clone, Default)]
pub struct StoredTokens {
    /// The stored form of the token section, while the tokens are unchanged.
    stored: Option<Vec<u8>>,
    /// The tokens, once read (or as given).
    read: OnceLock<ProviderTokens>,
}

impl StoredTokens {
    /// The tokens (read from the stored form the first time).
    pub fn get(&self) -> &ProviderTokens {
        self.read.get_or_init(|| {
            let mut input = Reader(self.stored.as_deref().unwrap_or_default());
            // The section was authenticated with the record; a malformed one (a format
            // this version cannot read) is as good as no tokens.
            read_tokens(&mut input)
                .filter(|_| input.0.is_empty())
                .unwrap_or_default()
        })
    }

    /// The access token and its times alone, without decoding the ID and refresh tokens
    /// (what most token requests need); `None` without an access token.
    pub fn access_token(&self) -> Option<AccessTokenEntry> {
        let (Some(stored), None) = (self.stored.as_deref(), self.read.get()) else {
            let tokens = self.get();
            return tokens.access_token.clone().map(|token| AccessTokenEntry {
                token,
                expires_at: tokens.access_token_expires_at,
                issued_at: tokens.access_token_issued_at,
            });
        };
        let mut input = Reader(stored);
        input.option(Reader::skip_token)?;
        let token = input.option(Reader::token)??;
        Some(AccessTokenEntry {
            token,
            expires_at: input.option(Reader::i64)?,
            issued_at: input.option(Reader::i64)?,
        })
    }

    /// Replaces the tokens (e.g. after a refresh).
    pub fn replace(&mut self, tokens: ProviderTokens) {
        *self = Self::from(tokens);
    }
}

/// A session's access token with its times (see [`StoredTokens::access_token`]).
pub struct AccessTokenEntry {
    /// The access token.
    pub token: String,
    /// Unix seconds when it expires, when the provider said.
    pub expires_at: Option<i64>,
    /// Unix seconds when it was obtained.
    pub issued_at: Option<i64>,
}

impl std::fmt::Debug for AccessTokenEntry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AccessTokenEntry")
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

impl From<ProviderTokens> for StoredTokens {
    fn from(tokens: ProviderTokens) -> Self {
        Self {
            stored: None,
            read: OnceLock::from(tokens),
        }
    }
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.read.get() {
            Some(tokens) => tokens.fmt(formatter),
            None => formatter.write_str("ProviderTokens(not read)"),
        }
    }
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

/// A session's [`Profile`], kept as the JSON it is stored as and parsed on first use:
/// `/userinfo` copies the JSON into its answer without parsing it.
#[derive(Clone, Default)]
pub struct StoredProfile {
    /// `{"name":…,"roles":[…],"groups":[…],"attributes":{…}}`
    json: String,
    parsed: OnceLock<Profile>,
}

impl StoredProfile {
    /// The stored form of `profile`.
    pub fn new(profile: Profile) -> Result<Self, InternalError> {
        let json = serde_json::to_string(&profile).map_err(|source| InternalError::Serialize {
            what: "a session",
            source,
        })?;
        Ok(Self {
            json,
            parsed: OnceLock::from(profile),
        })
    }

    /// The profile (parsed the first time).
    pub fn get(&self) -> &Profile {
        // Only our own serialisation is ever stored (and it is authenticated).
        self.parsed
            .get_or_init(|| serde_json::from_str(&self.json).unwrap_or_default())
    }

    /// The profile as one JSON object with the keys `name`, `roles`, `groups`, `attributes`.
    pub fn json(&self) -> &str {
        &self.json
    }
}

impl std::fmt::Debug for StoredProfile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(formatter)
    }
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
    /// The session's DPoP private key (RFC 9449; base64url PKCS#8), when the provider binds
    /// its tokens to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<String>,
}

impl std::fmt::Debug for ProviderTokens {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProviderTokens")
            .field("id_token", &self.id_token.as_ref().map(|_| "***"))
            .field("access_token", &self.access_token.as_ref().map(|_| "***"))
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("dpop_key", &self.dpop_key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SessionRecord {
    /// The stored (plaintext) form.
    pub fn encode(&self) -> Result<Vec<u8>, InternalError> {
        let profile = self.profile.json();
        let stored = self
            .tokens
            .stored
            .as_deref()
            .filter(|_| self.tokens.read.get().is_none());
        let tokens_len = stored.map_or_else(|| tokens_len(self.tokens.get()), <[u8]>::len);
        let mut out = Vec::with_capacity(256 + profile.len() + tokens_len);
        out.push(FORMAT);
        put_str(&mut out, &self.provider);
        put_str(&mut out, &self.subject);
        put_option(&mut out, self.sid.as_deref(), put_str);
        out.extend_from_slice(&self.created_at_ms.to_le_bytes());
        out.extend_from_slice(&self.last_touch_ms.to_le_bytes());
        put_str(&mut out, profile);
        match stored {
            Some(section) => out.extend_from_slice(section),
            None => put_tokens(&mut out, self.tokens.get()),
        }
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
        let profile = StoredProfile {
            json: input.string()?,
            parsed: OnceLock::new(),
        };
        Some(Self {
            provider,
            subject,
            sid,
            profile,
            created_at_ms,
            last_touch_ms,
            tokens: StoredTokens {
                stored: Some(input.0.to_vec()),
                read: OnceLock::new(),
            },
        })
    }
}

fn put_tokens(out: &mut Vec<u8>, tokens: &ProviderTokens) {
    put_option(out, tokens.id_token.as_deref(), put_token);
    put_option(out, tokens.access_token.as_deref(), put_token);
    put_option(out, tokens.access_token_expires_at, put_i64);
    put_option(out, tokens.access_token_issued_at, put_i64);
    put_option(out, tokens.refresh_token.as_deref(), put_token);
    // Last and only when present, so records written before DPoP read the same.
    if let Some(key) = &tokens.dpop_key {
        put_option(out, Some(key.as_str()), put_token);
    }
}

fn read_tokens(input: &mut Reader<'_>) -> Option<ProviderTokens> {
    Some(ProviderTokens {
        id_token: input.option(Reader::token)?,
        access_token: input.option(Reader::token)?,
        access_token_expires_at: input.option(Reader::i64)?,
        access_token_issued_at: input.option(Reader::i64)?,
        refresh_token: input.option(Reader::token)?,
        dpop_key: match input.0.is_empty() {
            true => None,
            false => input.option(Reader::token)?,
        },
    })
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
        &tokens.dpop_key,
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

    /// Passes over a token without decoding it.
    fn skip_token(&mut self) -> Option<()> {
        match self.byte()? {
            TEXT => self.bytes().map(drop),
            JWS => {
                for _ in 0..3 {
                    self.bytes()?;
                }
                Some(())
            }
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
            profile: StoredProfile::new(Profile {
                name: "Alice".to_owned(),
                roles: vec!["admin".to_owned()],
                groups: vec![],
                attributes,
            })
            .unwrap(),
            created_at_ms: 1,
            last_touch_ms: 2,
            tokens: ProviderTokens {
                id_token: Some(id_token.to_owned()),
                access_token: Some("opaque-token".to_owned()),
                access_token_expires_at: Some(3),
                access_token_issued_at: None,
                refresh_token: Some("a.b".to_owned()),
                dpop_key: None,
            }
            .into(),
        }
    }

    #[test]
    fn a_dpop_key_is_kept_last_and_records_without_one_read_as_before() {
        let without = record("x");
        let stored_without = without.encode().unwrap();
        let mut tokens = without.tokens.get().clone();
        tokens.dpop_key = Some("pkcs8-key".to_owned());
        let mut with = without.clone();
        with.tokens.replace(tokens);
        let stored_with = with.encode().unwrap();
        assert!(stored_with.starts_with(&stored_without), "appended last");
        let back = SessionRecord::decode(&stored_with).unwrap();
        assert_eq!(back.tokens.get().dpop_key.as_deref(), Some("pkcs8-key"));
        assert!(!format!("{back:?}").contains("pkcs8-key"));
        let old = SessionRecord::decode(&stored_without).unwrap();
        assert_eq!(old.tokens.get().dpop_key, None);
        assert_eq!(old.tokens.get().refresh_token.as_deref(), Some("a.b"));
    }

    #[test]
    fn records_survive_the_stored_form_and_jwts_shrink() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLQ";
        for token in [jwt, "not.a-jws.==", "a.b.c.d", "x", ""] {
            let original = record(token);
            let stored = original.encode().unwrap();
            let back = SessionRecord::decode(&stored).unwrap();
            assert_eq!(
                back.encode().unwrap(),
                stored,
                "unread tokens are kept as stored"
            );
            assert_eq!(back.tokens.get().id_token.as_deref(), Some(token));
            assert_eq!(format!("{back:?}"), format!("{original:?}"));
            assert_eq!(back.tokens.get().refresh_token.as_deref(), Some("a.b"));
            assert_eq!(back.profile.json(), original.profile.json());
            assert_eq!(
                back.profile.get().attributes,
                original.profile.get().attributes
            );
            assert_eq!(
                back.encode().unwrap(),
                stored,
                "read tokens are written the same"
            );
        }
        let stored_jwt = record(jwt).encode().unwrap().len() - record("").encode().unwrap().len();
        assert!(
            stored_jwt * 100 < jwt.len() * 85,
            "{stored_jwt} bytes for {}",
            jwt.len()
        );
    }

    #[test]
    fn the_access_token_reads_alone_as_it_was_stored() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLQ";
        for access in [jwt, "opaque-token"] {
            let mut original = record(jwt);
            let mut tokens = original.tokens.get().clone();
            tokens.access_token = Some(access.to_owned());
            tokens.access_token_issued_at = Some(-7);
            original.tokens.replace(tokens);
            let stored = SessionRecord::decode(&original.encode().unwrap()).unwrap();
            let entry = stored.tokens.access_token().unwrap();
            assert_eq!(
                (entry.token.as_str(), entry.expires_at, entry.issued_at),
                (access, Some(3), Some(-7))
            );
            // Read alone, the other tokens stay encoded until asked for.
            assert_eq!(stored.tokens.get().id_token.as_deref(), Some(jwt));
        }
        let mut without = record("x");
        let mut tokens = without.tokens.get().clone();
        tokens.access_token = None;
        without.tokens.replace(tokens);
        let stored = SessionRecord::decode(&without.encode().unwrap()).unwrap();
        assert!(stored.tokens.access_token().is_none());
        assert!(format!("{:?}", record("x").tokens.access_token()).contains("***"));
    }

    #[test]
    fn replaced_tokens_are_the_ones_stored() {
        let mut session = SessionRecord::decode(&record("x").encode().unwrap()).unwrap();
        let mut tokens = session.tokens.get().clone();
        tokens.access_token = Some("renewed".to_owned());
        session.tokens.replace(tokens);
        let back = SessionRecord::decode(&session.encode().unwrap()).unwrap();
        assert_eq!(back.tokens.get().access_token.as_deref(), Some("renewed"));
        assert_eq!(back.tokens.get().id_token.as_deref(), Some("x"));
    }

    #[test]
    fn other_stored_forms_are_unreadable() {
        let json = serde_json::to_vec(&serde_json::json!({"provider": "local"})).unwrap();
        assert!(SessionRecord::decode(&json).is_none());
        assert!(SessionRecord::decode(&[]).is_none());
        assert!(SessionRecord::decode(&[FORMAT, 0xff]).is_none());
    }
}
