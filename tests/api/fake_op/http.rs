//! Small HTTP pieces: form parameters, JSON answers and OAuth error answers, and
//! helpers for claims.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use wiremock::ResponseTemplate;

/// Form or query parameters of a request, in order, repeated names kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormParams(pub Vec<(String, String)>);

impl FormParams {
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// First value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}
/// An OAuth error answer (kept small; turned into a response at the end).
pub(super) struct OAuthError {
    status: u16,
    error: String,
    description: &'static str,
}

impl OAuthError {
    pub(super) fn response(self) -> ResponseTemplate {
        let r = json_response(
            self.status,
            json!({ "error": self.error, "error_description": self.description }),
        );
        match (self.status, self.error.as_str()) {
            (401, "invalid_client") => {
                r.insert_header("www-authenticate", "Basic realm=\"fake-op\"")
            }
            (401, "invalid_token") => {
                r.insert_header("www-authenticate", "Bearer error=\"invalid_token\"")
            }
            _ => r,
        }
    }
}

pub(super) type Reply = Result<Value, OAuthError>;

pub(super) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(super) fn random_string(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).unwrap();
    URL_SAFE_NO_PAD.encode(buf)
}

pub(super) fn json_response(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("cache-control", "no-store")
        .set_body_json(body)
}

pub(super) fn oauth_error(status: u16, error: &str, description: &'static str) -> OAuthError {
    OAuthError {
        status,
        error: error.to_owned(),
        description,
    }
}

pub(super) fn invalid_grant(description: &'static str) -> OAuthError {
    oauth_error(400, "invalid_grant", description)
}

pub(super) fn invalid_request(description: &'static str) -> OAuthError {
    oauth_error(400, "invalid_request", description)
}

pub(super) fn invalid_client(description: &'static str) -> OAuthError {
    oauth_error(401, "invalid_client", description)
}

/// Percent-decoding with `+` as space (application/x-www-form-urlencoded).
pub(super) fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Applies overrides to a JSON object: `null` removes, anything else replaces.
pub(super) fn merge(target: &mut Map<String, Value>, overrides: &Map<String, Value>) {
    for (k, v) in overrides {
        if v.is_null() {
            target.remove(k);
        } else {
            target.insert(k.clone(), v.clone());
        }
    }
}

pub(super) fn aud_contains(aud: Option<&Value>, wanted: &[&str]) -> bool {
    match aud {
        Some(Value::String(s)) => wanted.contains(&s.as_str()),
        Some(Value::Array(a)) => a
            .iter()
            .any(|v| v.as_str().is_some_and(|s| wanted.contains(&s))),
        _ => false,
    }
}
