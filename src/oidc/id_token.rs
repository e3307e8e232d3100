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

/// Checks a refreshed ID token at time `now` (Unix seconds); `Err` names the failed check.
pub async fn verify_refreshed(
    provider: &Provider,
    http: &reqwest::Client,
    token: &str,
    original: &OriginalLogin<'_>,
    now: i64,
) -> Result<(), &'static str> {
    // Core 3.1.3.7 steps 6-8: signature, algorithm the provider lists for ID tokens.
    let claims = jwt::verify_signature(provider, http, token, TokenKind::IdToken)
        .await?
        .claims;
    // Steps 2-5: issuer, audience, authorized party.
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer().as_str()) {
        return Err("the iss claim does not name the provider");
    }
    let client_id = &provider.config.client_id;
    if !audience_contains(&claims, client_id) {
        return Err("the aud claim does not contain our client_id");
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => {}
        Some(_) => return Err("the azp claim names another party"),
        None if audiences(&claims).len() > 1 => {
            return Err("several audiences and no azp claim");
        }
        None => {}
    }
    // Steps 9-10: expiry and issue time.
    let expires = numeric_date(&claims, "exp").ok_or("the exp claim is missing")?;
    if expires <= now {
        return Err("the exp claim has passed");
    }
    let issued_at = numeric_date(&claims, "iat").ok_or("the iat claim is missing")?;
    if issued_at > now.saturating_add(CLOCK_SKEW_SECONDS) {
        return Err("the iat claim is in the future");
    }
    // Core 12.2: the same subject, issuer and audience as the original ID token.
    if claims.get("sub").and_then(Value::as_str) != Some(original.subject) {
        return Err("the sub claim differs from the original ID token's");
    }
    if let Some(first) = original.id_token.and_then(jwt_payload) {
        if claims.get("iss") != first.get("iss") {
            return Err("the iss claim differs from the original ID token's");
        }
        let mut now_aud = audiences(&claims);
        let mut first_aud = audiences(&first);
        now_aud.sort_unstable();
        first_aud.sort_unstable();
        if now_aud != first_aud {
            return Err("the aud claim differs from the original ID token's");
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
