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

/// Why a logout token is refused (the text names the failed check; it is logged and
/// returned as the error description).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenRefusal {
    /// The signature check failed.
    #[error("{0}")]
    Signature(jwt::SignatureRefusal),
    /// It is not a JWT.
    #[error("it is not a JWT")]
    NotJwt,
    /// The iss claim is missing.
    #[error("the iss claim is missing")]
    IssuerMissing,
    /// The issuer is not a configured provider.
    #[error("the issuer is not a configured provider")]
    UnknownIssuer,
    /// Its typ header is neither logout+jwt nor JWT.
    #[error("its typ header is neither logout+jwt nor JWT")]
    Typ,
    /// The iss claim does not name the provider.
    #[error("the iss claim does not name the provider")]
    IssuerMismatch,
    /// The aud claim does not contain our client_id.
    #[error("the aud claim does not contain our client_id")]
    Audience,
    /// The iat claim is missing.
    #[error("the iat claim is missing")]
    IssuedAtMissing,
    /// The iat claim is in the future.
    #[error("the iat claim is in the future")]
    IssuedInFuture,
    /// The iat claim is older than backchannel.max_age.
    #[error("the iat claim is older than backchannel.max_age")]
    TooOld,
    /// The exp claim is not a number.
    #[error("the exp claim is not a number")]
    ExpiryNotNumber,
    /// The exp claim has passed.
    #[error("the exp claim has passed")]
    Expired,
    /// The jti claim is missing.
    #[error("the jti claim is missing")]
    JtiMissing,
    /// The events claim is missing or not an object.
    #[error("the events claim is missing or not an object")]
    EventsMissing,
    /// The events claim lacks the back-channel logout event.
    #[error("the events claim lacks the back-channel logout event")]
    EventMissing,
    /// The back-channel logout event is not an object.
    #[error("the back-channel logout event is not an object")]
    EventNotObject,
    /// It has neither a sid nor a sub claim.
    #[error("it has neither a sid nor a sub claim")]
    NoSubject,
    /// It carries a nonce claim.
    #[error("it carries a nonce claim")]
    Nonce,
}

/// The provider whose issuer the token's (unverified) `iss` names: whose keys may verify
/// it, and whom a refusal's log line names.
pub fn claimed_provider<'a>(
    providers: &'a ProviderRegistry,
    token: &str,
) -> Result<&'a Arc<Provider>, LogoutTokenRefusal> {
    let unverified = jwt_payload(token).ok_or(LogoutTokenRefusal::NotJwt)?;
    let issuer = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(LogoutTokenRefusal::IssuerMissing)?;
    providers
        .all()
        .iter()
        .find(|provider| provider.issuer() == issuer)
        .ok_or(LogoutTokenRefusal::UnknownIssuer)
}

/// Validates `token` at time `now` (Unix seconds), accepting `iat` no older than `max_age`.
pub async fn validate(
    providers: &ProviderRegistry,
    http: &reqwest::Client,
    token: &str,
    max_age_seconds: i64,
    now: i64,
) -> Result<LogoutRequest, LogoutTokenRefusal> {
    // 2.6 step 2 needs the issuer's keys: find the provider from the (unverified) `iss`.
    let provider = claimed_provider(providers, token)?.clone();
    // 2.6 step 2: the signature, with the provider's keys (never none, never HMAC) and
    // exactly this client's algorithm for its ID tokens (SPEC 2 and 3: validated as an ID
    // token would be, `id_token_signed_response_alg`).
    let verified = jwt::verify_signature(&provider, http, token, TokenKind::IdToken)
        .await
        .map_err(LogoutTokenRefusal::Signature)?;
    // 2.6 step 2 / section 2.4: explicit typing, when present.
    if let Some(typ) = &verified.header.typ
        && !["logout+jwt", "application/logout+jwt", "JWT"]
            .iter()
            .any(|allowed| typ.eq_ignore_ascii_case(allowed))
    {
        return Err(LogoutTokenRefusal::Typ);
    }
    let claims = verified.claims;
    // 2.6 step 3: iss, aud, iat as for ID tokens.
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer().as_str()) {
        return Err(LogoutTokenRefusal::IssuerMismatch);
    }
    if !audience_contains(&claims, &provider.config.client_id) {
        return Err(LogoutTokenRefusal::Audience);
    }
    let issued_at = numeric_date(&claims, "iat").ok_or(LogoutTokenRefusal::IssuedAtMissing)?;
    if issued_at > now + CLOCK_SKEW_SECONDS {
        return Err(LogoutTokenRefusal::IssuedInFuture);
    }
    if issued_at < now - max_age_seconds {
        return Err(LogoutTokenRefusal::TooOld);
    }
    // Section 2.4: exp, when present, must not have passed.
    if claims.contains_key("exp") {
        let expires = numeric_date(&claims, "exp").ok_or(LogoutTokenRefusal::ExpiryNotNumber)?;
        if expires <= now {
            return Err(LogoutTokenRefusal::Expired);
        }
    }
    // Section 2.4: jti is required (replay is checked against the store).
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|jti| !jti.is_empty())
        .ok_or(LogoutTokenRefusal::JtiMissing)?
        .to_owned();
    // 2.6 step 5: the events claim with the back-channel logout member, an object.
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .ok_or(LogoutTokenRefusal::EventsMissing)?
        .get(BACKCHANNEL_LOGOUT_EVENT)
        .ok_or(LogoutTokenRefusal::EventMissing)?;
    if !event.is_object() {
        return Err(LogoutTokenRefusal::EventNotObject);
    }
    // 2.6 step 4: sub, sid or both.
    let sid = string_claim(&claims, "sid");
    let sub = string_claim(&claims, "sub");
    if sid.is_none() && sub.is_none() {
        return Err(LogoutTokenRefusal::NoSubject);
    }
    // 2.6 step 6: a nonce is forbidden (so an ID token cannot pass as a logout token).
    if claims.contains_key("nonce") {
        return Err(LogoutTokenRefusal::Nonce);
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
