//! ID tokens in refresh responses (OpenID Connect Core 12.2, SPEC 5): verified like the
//! login's ID token (signature from the provider's JWKS with an algorithm it lists for ID
//! tokens, `iss`, `aud`, `azp`, `exp`, `iat`; Core 3.1.3.7) and bound to the original one:
//! the same `iss`, `sub` and `aud`. Only a token that passes may be kept in the session.

use serde_json::{Map, Value};

use super::Provider;
use super::jwt::jwt_payload;
use super::jwt::{self, TokenKind, audience_contains, numeric_date};

/// Allowed clock difference for `iat` in the future.
const CLOCK_SKEW_SECONDS: i64 = 60;

/// What a refreshed ID token must match: the session's original ID token (as verified at
/// login) and subject.
pub struct OriginalLogin<'a> {
    /// The ID token of the login (or of the last verified refresh), when kept.
    pub id_token: Option<&'a str>,
    /// The session's subject (the original ID token's `sub`).
    pub subject: &'a str,
}

/// Why a refreshed ID token is refused (the text names the failed check in logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefreshedIdTokenRefusal {
    /// The signature check failed.
    #[error("{0}")]
    Signature(jwt::SignatureRefusal),
    /// The iss claim does not name the provider.
    #[error("the iss claim does not name the provider")]
    IssuerMismatch,
    /// The aud claim does not contain our client_id.
    #[error("the aud claim does not contain our client_id")]
    Audience,
    /// The azp claim names another party.
    #[error("the azp claim names another party")]
    AuthorizedParty,
    /// Several audiences and no azp claim.
    #[error("several audiences and no azp claim")]
    NoAuthorizedParty,
    /// The exp claim is missing.
    #[error("the exp claim is missing")]
    ExpiryMissing,
    /// The exp claim has passed.
    #[error("the exp claim has passed")]
    Expired,
    /// The iat claim is missing.
    #[error("the iat claim is missing")]
    IssuedAtMissing,
    /// The iat claim is in the future.
    #[error("the iat claim is in the future")]
    IssuedInFuture,
    /// The sub claim differs from the original ID token's.
    #[error("the sub claim differs from the original ID token's")]
    SubjectChanged,
    /// The iss claim differs from the original ID token's.
    #[error("the iss claim differs from the original ID token's")]
    IssuerChanged,
    /// The aud claim differs from the original ID token's.
    #[error("the aud claim differs from the original ID token's")]
    AudienceChanged,
}

/// Checks a refreshed ID token at time `now` (Unix seconds); `Err` names the failed check.
pub async fn verify_refreshed(
    provider: &Provider,
    http: &reqwest::Client,
    token: &str,
    original: &OriginalLogin<'_>,
    now: i64,
) -> Result<(), RefreshedIdTokenRefusal> {
    // Core 3.1.3.7 steps 6-8: signature, algorithm the provider lists for ID tokens.
    let claims = jwt::verify_signature(provider, http, token, TokenKind::IdToken)
        .await
        .map_err(RefreshedIdTokenRefusal::Signature)?
        .claims;
    // Steps 2-5: issuer, audience, authorized party.
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer().as_str()) {
        return Err(RefreshedIdTokenRefusal::IssuerMismatch);
    }
    let client_id = &provider.config.client_id;
    if !audience_contains(&claims, client_id) {
        return Err(RefreshedIdTokenRefusal::Audience);
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => {}
        Some(_) => return Err(RefreshedIdTokenRefusal::AuthorizedParty),
        None if audiences(&claims).len() > 1 => {
            return Err(RefreshedIdTokenRefusal::NoAuthorizedParty);
        }
        None => {}
    }
    // Steps 9-10: expiry and issue time.
    let expires = numeric_date(&claims, "exp").ok_or(RefreshedIdTokenRefusal::ExpiryMissing)?;
    if expires <= now {
        return Err(RefreshedIdTokenRefusal::Expired);
    }
    let issued_at = numeric_date(&claims, "iat").ok_or(RefreshedIdTokenRefusal::IssuedAtMissing)?;
    if issued_at > now.saturating_add(CLOCK_SKEW_SECONDS) {
        return Err(RefreshedIdTokenRefusal::IssuedInFuture);
    }
    // Core 12.2: the same subject, issuer and audience as the original ID token.
    if claims.get("sub").and_then(Value::as_str) != Some(original.subject) {
        return Err(RefreshedIdTokenRefusal::SubjectChanged);
    }
    if let Some(first) = original.id_token.and_then(jwt_payload) {
        if claims.get("iss") != first.get("iss") {
            return Err(RefreshedIdTokenRefusal::IssuerChanged);
        }
        let mut now_aud = audiences(&claims);
        let mut first_aud = audiences(&first);
        now_aud.sort_unstable();
        first_aud.sort_unstable();
        if now_aud != first_aud {
            return Err(RefreshedIdTokenRefusal::AudienceChanged);
        }
    }
    Ok(())
}

/// `aud` as a list (a single string is a list of one).
fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(single)) => vec![single.as_str()],
        Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}
