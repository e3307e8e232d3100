//! Back-channel logout tokens, checked clause by clause against OpenID Connect
//! Back-Channel Logout 1.0 section 2.6 (and SPEC 2), one check and one message each.
//! Replay (`jti`) is checked by the caller against the shared store.

use std::sync::Arc;

use serde_json::Value;

use super::jwt::{self, TokenKind, audience_contains, numeric_date};
use super::{Provider, ProviderRegistry};
use crate::oidc::jwt::jwt_payload;

/// The event a logout token must carry (section 2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Allowed clock difference for `iat` in the future.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// What a valid logout token asks for.
pub struct LogoutRequest {
    /// The provider that sent it.
    pub provider: Arc<Provider>,
    /// Its `sid`, if any.
    pub sid: Option<String>,
    /// Its `sub`, if any.
    pub sub: Option<String>,
    /// Its `jti`, for the replay check.
    pub jti: String,
}

/// Validates `token` at time `now` (Unix seconds), accepting `iat` no older than `max_age`.
pub async fn validate(
    providers: &ProviderRegistry,
    http: &reqwest::Client,
    token: &str,
    max_age_seconds: i64,
    now: i64,
) -> Result<LogoutRequest, &'static str> {
    // 2.6 step 2 needs the issuer's keys: find the provider from the (unverified) `iss`.
    let unverified = jwt_payload(token).ok_or("it is not a JWT")?;
    let issuer = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or("the iss claim is missing")?;
    let provider = providers
        .all()
        .iter()
        .find(|provider| provider.issuer() == issuer)
        .ok_or("the issuer is not a configured provider")?
        .clone();
    // 2.6 step 2: the signature, with the provider's keys (never none, never HMAC) and an
    // algorithm it lists for ID tokens (SPEC 2: validated as an ID token would be).
    let verified = jwt::verify_signature(&provider, http, token, TokenKind::IdToken).await?;
    // 2.6 step 2 / section 2.4: explicit typing, when present.
    if let Some(typ) = &verified.header.typ
        && !["logout+jwt", "application/logout+jwt", "JWT"]
            .iter()
            .any(|allowed| typ.eq_ignore_ascii_case(allowed))
    {
        return Err("its typ header is neither logout+jwt nor JWT");
    }
    let claims = verified.claims;
    // 2.6 step 3: iss, aud, iat as for ID tokens.
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer().as_str()) {
        return Err("the iss claim does not name the provider");
    }
    if !audience_contains(&claims, &provider.config.client_id) {
        return Err("the aud claim does not contain our client_id");
    }
    let issued_at = numeric_date(&claims, "iat").ok_or("the iat claim is missing")?;
    if issued_at > now + CLOCK_SKEW_SECONDS {
        return Err("the iat claim is in the future");
    }
    if issued_at < now - max_age_seconds {
        return Err("the iat claim is older than backchannel.max_age");
    }
    // Section 2.4: exp, when present, must not have passed.
    if claims.contains_key("exp") {
        let expires = numeric_date(&claims, "exp").ok_or("the exp claim is not a number")?;
        if expires <= now {
            return Err("the exp claim has passed");
        }
    }
    // Section 2.4: jti is required (replay is checked against the store).
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|jti| !jti.is_empty())
        .ok_or("the jti claim is missing")?
        .to_owned();
    // 2.6 step 5: the events claim with the back-channel logout member, an object.
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .ok_or("the events claim is missing or not an object")?
        .get(BACKCHANNEL_LOGOUT_EVENT)
        .ok_or("the events claim lacks the back-channel logout event")?;
    if !event.is_object() {
        return Err("the back-channel logout event is not an object");
    }
    // 2.6 step 4: sub, sid or both.
    let sid = string_claim(&claims, "sid");
    let sub = string_claim(&claims, "sub");
    if sid.is_none() && sub.is_none() {
        return Err("it has neither a sid nor a sub claim");
    }
    // 2.6 step 6: a nonce is forbidden (so an ID token cannot pass as a logout token).
    if claims.contains_key("nonce") {
        return Err("it carries a nonce claim");
    }
    Ok(LogoutRequest {
        provider,
        sid,
        sub,
        jti,
    })
}

fn string_claim(claims: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}
