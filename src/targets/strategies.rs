//! The five ways a target token is obtained (SPEC 6), each cached and fetched once at a
//! time: user tokens per (session or bearer token, target), service tokens per target.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::Target;
use super::cache::{CacheSlot, CachedToken, TokenCache};
use crate::caller::Caller;
use crate::config::{ClientAuth, Strategy};
use crate::crypto;
use crate::error::ApiError;
use crate::oidc::flow::jwt_payload;
use crate::oidc::refresh;
use crate::oidc::token_endpoint::{
    TokenAnswer, TokenClient, TokenError, capped_expiry, expiry_after, request_token,
};
use crate::session::unix_now;
use crate::state::AppState;

/// RFC 8693 grant type and token type.
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Lifetime assumed when a token endpoint names none and the token is not a JWT.
const DEFAULT_LIFETIME_SECONDS: i64 = 300;

/// How long a service token's refresh token is kept beyond the access token.
const REFRESH_TOKEN_KEEP: Duration = Duration::from_secs(3600);

/// A token handed to the caller.
pub struct IssuedToken {
    /// The token.
    pub value: String,
    /// Unix seconds of expiry.
    pub expires_at: i64,
}

impl From<CachedToken> for IssuedToken {
    fn from(token: CachedToken) -> Self {
        Self {
            value: token.value,
            expires_at: token.expires_at,
        }
    }
}

/// The token `caller` gets for `target`.
pub async fn issue_token(
    state: &AppState,
    caller: &Caller,
    target: &Target,
) -> Result<IssuedToken, ApiError> {
    match &target.config.strategy {
        Strategy::AccessToken => {
            let (value, expires_at) = user_access_token(state, caller).await?;
            Ok(IssuedToken { value, expires_at })
        }
        Strategy::Exchange { .. } | Strategy::Jwt { .. } => {
            let slot = user_slot(&state.token_cache, caller, target);
            cached_or_fetched(state, &slot, async || {
                fetch(state, caller, target, None).await
            })
            .await
        }
        Strategy::ClientCredentials { .. } | Strategy::Password { .. } => {
            let slot = state
                .token_cache
                .slot("service", target.url(), &target.service_secret);
            // One read serves both the common case (fresh) and the refresh token of a stale one.
            let cached = state.token_cache.read(&slot).await?;
            if let Some(token) = cached.as_ref().filter(|token| token.is_fresh(unix_now())) {
                return Ok(token.clone().into());
            }
            cached_or_fetched(state, &slot, async || {
                fetch(state, caller, target, cached).await
            })
            .await
        }
    }
}

/// A fresh cached token, or one fetched by whichever request wins the lock.
async fn cached_or_fetched(
    state: &AppState,
    slot: &CacheSlot,
    fetch: impl AsyncFnOnce() -> Result<CachedToken, ApiError>,
) -> Result<IssuedToken, ApiError> {
    let cache = &state.token_cache;
    let token = state
        .flights
        .run(
            &TokenCache::lock_key(slot),
            async || {
                Ok(cache
                    .read(slot)
                    .await?
                    .filter(|token| token.is_fresh(unix_now())))
            },
            async || {
                let token = fetch().await?;
                let lifetime = Duration::from_secs((token.expires_at - unix_now()).max(1) as u64);
                let keep = if token.refresh_token.is_some() {
                    lifetime.max(REFRESH_TOKEN_KEEP)
                } else {
                    lifetime
                };
                cache.write(slot, &token, keep).await?;
                Ok(token)
            },
        )
        .await?;
    Ok(token.into())
}

/// User tokens are keyed by the session (or bearer token) and sealed with its secret.
fn user_slot(cache: &TokenCache, caller: &Caller, target: &Target) -> CacheSlot {
    match caller {
        Caller::Session(session) => {
            let owner = crypto::derive_name("session-owner", session.ticket.secret());
            cache.slot(&owner, target.url(), session.ticket.secret())
        }
        Caller::Bearer(identity) => {
            let owner = crypto::derive_name("bearer-owner", identity.token().as_bytes());
            cache.slot(&owner, target.url(), identity.token().as_bytes())
        }
    }
}

/// The caller's own access token: the session's (refreshed as needed) or the bearer token.
async fn user_access_token(state: &AppState, caller: &Caller) -> Result<(String, i64), ApiError> {
    match caller {
        Caller::Session(session) => refresh::access_token(state, session).await,
        Caller::Bearer(identity) => Ok((identity.token().to_owned(), identity.expires_at)),
    }
}

async fn fetch(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    stale: Option<CachedToken>,
) -> Result<CachedToken, ApiError> {
    match &target.config.strategy {
        Strategy::AccessToken => Err(ApiError::Internal),
        Strategy::Exchange {
            audience,
            resource,
            scope,
        } => {
            let (subject_token, _) = user_access_token(state, caller).await?;
            let provider = state.providers.get(caller.provider()).ok_or_else(|| {
                ApiError::TokenUnavailable("The session's provider is not configured".to_owned())
            })?;
            let discovered = provider.discovered(&state.http).await?;
            let token_url = discovered.token_endpoint.clone().ok_or_else(|| {
                ApiError::TokenUnavailable("The provider has no token endpoint".to_owned())
            })?;
            let mut form = vec![
                ("grant_type", TOKEN_EXCHANGE_GRANT.to_owned()),
                ("subject_token", subject_token),
                ("subject_token_type", ACCESS_TOKEN_TYPE.to_owned()),
            ];
            push_optional(&mut form, "audience", audience);
            push_optional(&mut form, "resource", resource);
            push_optional(&mut form, "scope", scope);
            let client = TokenClient {
                client_id: &provider.config.client_id,
                auth: &provider.config.client_auth,
                key: provider.client_key.as_ref(),
            };
            upstream(state, target, &token_url, &client, form).await
        }
        Strategy::ClientCredentials {
            token_url,
            client_id,
            client_auth,
            scope,
            audience,
        } => {
            let client = TokenClient {
                client_id,
                auth: client_auth,
                key: target.client_key.as_ref(),
            };
            // NERIS: renew with the refresh token that came with the last token, if any.
            if let Some(refresh_token) = stale.and_then(|token| token.refresh_token) {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", refresh_token),
                ];
                push_optional(&mut form, "scope", scope);
                match upstream(state, target, token_url, &client, form).await {
                    Ok(token) => return Ok(token),
                    Err(error) => {
                        tracing::info!(%error, target = target.url(), "service token refresh failed; using client credentials")
                    }
                }
            }
            let mut form = vec![("grant_type", "client_credentials".to_owned())];
            push_optional(&mut form, "scope", scope);
            push_optional(&mut form, "audience", audience);
            upstream(state, target, token_url, &client, form).await
        }
        Strategy::Password {
            token_url,
            client_id,
            client_secret,
            username,
            password,
            scope,
        } => {
            let auth = ClientAuth::ClientSecretBasic {
                secret: client_secret.clone(),
            };
            let client = TokenClient {
                client_id,
                auth: &auth,
                key: None,
            };
            let mut form = vec![
                ("grant_type", "password".to_owned()),
                ("username", username.clone()),
                ("password", password.expose().to_owned()),
            ];
            push_optional(&mut form, "scope", scope);
            upstream(state, target, token_url, &client, form).await
        }
        Strategy::Jwt { lifetime, audience } => {
            let now = unix_now();
            let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(300).max(1);
            let profile = caller.profile();
            let claims = OurClaims {
                iss: state
                    .config
                    .server
                    .public_url
                    .as_str()
                    .trim_end_matches('/'),
                aud: audience.as_deref().unwrap_or(target.url()),
                sub: caller.subject(),
                name: &profile.name,
                roles: &profile.roles,
                groups: &profile.groups,
                provider: caller.provider(),
                iat: now,
                exp: now + lifetime,
                jti: crypto::random_token::<16>().map_err(|_| ApiError::Internal)?,
            };
            Ok(CachedToken {
                value: state.signer.sign(&claims)?,
                issued_at: now,
                expires_at: now + lifetime,
                refresh_token: None,
            })
        }
    }
}

#[derive(Serialize)]
struct OurClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    name: &'a str,
    roles: &'a [String],
    groups: &'a [String],
    provider: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

async fn upstream(
    state: &AppState,
    target: &Target,
    token_url: &url::Url,
    client: &TokenClient<'_>,
    form: Vec<(&'static str, String)>,
) -> Result<CachedToken, ApiError> {
    let started = std::time::Instant::now();
    let answer = request_token(&state.http, token_url, client, form).await;
    state
        .metrics
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
    // Upstream numbers: saturating, capped (a hostile `expires_in` must not wrap).
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

fn push_optional(
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
