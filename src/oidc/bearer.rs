//! Bearer callers (SPEC 5): a provider's JWT access token verified against its JWKS
//! (`iss`, `aud` = `bearer_audience`, `exp`, `nbf`), or an opaque token checked at the
//! provider's RFC 7662 introspection endpoint, with answers cached no longer than the
//! token's `exp` and at most 60 s.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::{Map, Value};

use super::jwt::{self, audience_contains, numeric_date};
use super::token_endpoint::{TokenClient, authenticated_post};
use super::{Provider, ProviderRegistry};
use crate::clock::unix_now;
use crate::crypto;
use crate::oidc::claims::map_profile;
use crate::oidc::jwt::jwt_payload;
use crate::session::Profile;

/// Longest time an introspection answer is reused.
pub const INTROSPECTION_CACHE_SECONDS: i64 = 60;

/// Entries above this count trigger a sweep of expired ones.
const CACHE_SWEEP_THRESHOLD: usize = 10_000;

/// A caller authenticated by a bearer token.
#[derive(Clone)]
pub struct BearerIdentity {
    /// Provider id.
    pub provider: String,
    /// `sub` (or the introspection answer's `username`).
    pub subject: String,
    /// Name, roles, groups, attributes from the token's claims.
    pub profile: Profile,
    /// Unix seconds of the token's `exp`.
    pub expires_at: i64,
    token: String,
}

impl BearerIdentity {
    /// The bearer token itself (for `access_token` targets and as exchange subject).
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl std::fmt::Debug for BearerIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BearerIdentity")
            .field("provider", &self.provider)
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Verifies bearer tokens and caches introspection answers.
#[derive(Clone, Default)]
pub struct BearerVerifier {
    introspected: Arc<DashMap<String, (i64, BearerIdentity)>>,
}

impl BearerVerifier {
    /// Who `token` belongs to; `Err` with a reason when it is not acceptable.
    pub async fn verify(
        &self,
        providers: &ProviderRegistry,
        http: &reqwest::Client,
        token: &str,
    ) -> Result<BearerIdentity, &'static str> {
        let issuer = jwt_payload(token)
            .and_then(|claims| claims.get("iss").and_then(Value::as_str).map(str::to_owned));
        if let Some(issuer) = issuer
            && let Some(provider) = providers
                .all()
                .iter()
                .find(|provider| provider.config.accept_bearer && provider.issuer() == issuer)
        {
            return verify_jwt(provider, http, token).await;
        }
        let introspecting: Vec<_> = providers
            .all()
            .iter()
            .filter(|provider| provider.config.accept_bearer && provider.config.introspection)
            .collect();
        if introspecting.is_empty() {
            return Err("the token is not from a provider that accepts bearer tokens");
        }
        let cache_key = crypto::derive_name("bearer-token", token.as_bytes());
        let now = unix_now();
        if let Some(entry) = self.introspected.get(&cache_key)
            && entry.0 > now
        {
            return Ok(entry.1.clone());
        }
        for provider in introspecting {
            if let Some(identity) = introspect(provider, http, token).await? {
                let cached_until = identity.expires_at.min(now + INTROSPECTION_CACHE_SECONDS);
                if self.introspected.len() > CACHE_SWEEP_THRESHOLD {
                    self.introspected.retain(|_, (until, _)| *until > now);
                }
                self.introspected
                    .insert(cache_key, (cached_until, identity.clone()));
                return Ok(identity);
            }
        }
        Err("the token is not active")
    }
}

async fn verify_jwt(
    provider: &Provider,
    http: &reqwest::Client,
    token: &str,
) -> Result<BearerIdentity, &'static str> {
    let verified = jwt::verify_signature(provider, http, token).await?;
    // An ID token is no access token (RFC 9068 section 4, OIDC Core 2): its `aud` is our
    // client id, which is also the default bearer audience, and it travels in URLs as
    // `id_token_hint`. Refuse other explicit types, a `nonce`, and Keycloak's `typ: ID`.
    if let Some(typ) = &verified.header.typ
        && !["at+jwt", "application/at+jwt", "JWT"]
            .iter()
            .any(|allowed| typ.eq_ignore_ascii_case(allowed))
    {
        return Err("its typ header is not that of an access token");
    }
    let claims = verified.claims;
    if claims.contains_key("nonce") || claims.get("typ").and_then(Value::as_str) == Some("ID") {
        return Err("it is an ID token, not an access token");
    }
    let now = unix_now();
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer().as_str()) {
        return Err("the iss claim does not name the provider");
    }
    if !audience_contains(&claims, &provider.config.bearer_audience) {
        return Err("the aud claim does not contain the bearer audience");
    }
    let expires_at = numeric_date(&claims, "exp").ok_or("the exp claim is missing")?;
    if expires_at <= now {
        return Err("the token has expired");
    }
    if claims.contains_key("nbf") {
        let not_before = numeric_date(&claims, "nbf").ok_or("the nbf claim is not a number")?;
        if not_before > now {
            return Err("the token is not valid yet");
        }
    }
    identity(provider, &claims, expires_at, token)
}

/// RFC 7662: `Ok(None)` for an inactive token, `Err` when the endpoint cannot answer.
async fn introspect(
    provider: &Provider,
    http: &reqwest::Client,
    token: &str,
) -> Result<Option<BearerIdentity>, &'static str> {
    let discovered = provider
        .discovered(http)
        .await
        .map_err(|_| "the provider is unavailable")?;
    let endpoint = discovered
        .introspection_endpoint
        .clone()
        .ok_or("the provider has no introspection endpoint")?;
    let config = &provider.config;
    let client = TokenClient {
        client_id: &config.client_id,
        auth: &config.client_auth,
        key: provider.client_key.as_ref(),
    };
    let form = vec![
        ("token", token.to_owned()),
        ("token_type_hint", "access_token".to_owned()),
    ];
    let response = authenticated_post(http, &endpoint, &client, form)
        .map_err(|_| "the client assertion could not be signed")?
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|_| "the introspection endpoint could not be reached")?;
    if !response.status().is_success() {
        tracing::warn!(provider = %provider.id(), status = %response.status(), "introspection refused");
        return Err("the introspection endpoint refused the request");
    }
    let answer: Map<String, Value> = response
        .json()
        .await
        .map_err(|_| "the introspection answer is not JSON")?;
    if answer.get("active") != Some(&Value::Bool(true)) {
        return Ok(None);
    }
    if answer.contains_key("aud") && !audience_contains(&answer, &config.bearer_audience) {
        return Ok(None);
    }
    let now = unix_now();
    let expires_at = numeric_date(&answer, "exp").unwrap_or(now + INTROSPECTION_CACHE_SECONDS);
    if expires_at <= now {
        return Ok(None);
    }
    let mut claims = answer;
    if !claims.contains_key("sub")
        && let Some(username) = claims.get("username").cloned()
    {
        claims.insert("sub".to_owned(), username);
    }
    identity(provider, &claims, expires_at, token).map(Some)
}

fn identity(
    provider: &Provider,
    claims: &Map<String, Value>,
    expires_at: i64,
    token: &str,
) -> Result<BearerIdentity, &'static str> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|sub| !sub.is_empty())
        .ok_or("the token names no subject")?
        .to_owned();
    Ok(BearerIdentity {
        provider: provider.id().to_owned(),
        subject,
        profile: map_profile(&provider.config, claims),
        expires_at,
        token: token.to_owned(),
    })
}
