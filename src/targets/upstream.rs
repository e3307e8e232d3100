//! The token-endpoint call the upstream strategies share: timing, the WARN line on
//! failure, and the answer turned into a cacheable token.

use serde_json::Value;

use super::Target;
use super::cache::CachedToken;
use super::deps::TokenDeps;
use crate::clock::unix_now;
use crate::error::ApiError;
use crate::oidc::dpop::Prover;
use crate::oidc::jwt::jwt_payload;
use crate::oidc::token_endpoint::{
    TokenAnswer, TokenClient, TokenError, capped_expiry, expiry_after, request_token_with,
};

/// Lifetime assumed when a token endpoint names none and the token is not a JWT.
const DEFAULT_LIFETIME_SECONDS: i64 = 300;

/// Posts `form` to `token_url` for `target`.
pub(super) async fn upstream(
    deps: &TokenDeps<'_>,
    target: &Target,
    token_url: &url::Url,
    client: &TokenClient<'_>,
    form: Vec<(&'static str, String)>,
) -> Result<CachedToken, ApiError> {
    upstream_with(deps, target, token_url, client, form, None).await
}

/// [`upstream`] with a DPoP proof of the caller's session key (RFC 9449 section 5).
pub(super) async fn upstream_with(
    deps: &TokenDeps<'_>,
    target: &Target,
    token_url: &url::Url,
    client: &TokenClient<'_>,
    form: Vec<(&'static str, String)>,
    prover: Option<Prover<'_>>,
) -> Result<CachedToken, ApiError> {
    let started = std::time::Instant::now();
    let answer = request_token_with(deps.http, token_url, client, form, prover).await;
    deps.metrics
        .upstream_latency
        .with_label_values(&[target.url(), "token"])
        .observe(started.elapsed().as_secs_f64());
    let answer = answer.map_err(|error| {
        tracing::warn!(%error, target = target.url(), "target token request failed");
        ApiError::TokenUnavailable(match error {
            TokenError::Refused { code, .. } => {
                format!("The token endpoint refused the request ({code})")
            }
            other => capitalise(&other.to_string()),
        })
    })?;
    Ok(cached(answer))
}

fn cached(answer: TokenAnswer) -> CachedToken {
    let now = unix_now();
    // Upstream numbers: saturating and capped, so a hostile answer cannot wrap a time.
    let expires_at = match answer
        .expires_in
        .and_then(|seconds| expiry_after(now, seconds))
    {
        Some(expires_at) => expires_at,
        None => jwt_payload(&answer.access_token)
            .and_then(|claims| claims.get("exp").and_then(Value::as_i64))
            .map_or(now + DEFAULT_LIFETIME_SECONDS, |exp| {
                capped_expiry(now, exp)
            }),
    };
    CachedToken {
        value: answer.access_token,
        issued_at: now,
        expires_at,
        refresh_token: answer.refresh_token,
    }
}

/// Adds `name=value` to `form` when a value is configured.
pub(super) fn push_optional(
    form: &mut Vec<(&'static str, String)>,
    name: &'static str,
    value: &Option<String>,
) {
    if let Some(value) = value {
        form.push((name, value.clone()));
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
