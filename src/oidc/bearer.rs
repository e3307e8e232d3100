//! Bearer callers (SPEC 5): a provider's JWT access token verified against its JWKS
//! (`iss`, `aud` = `bearer_audience`, `exp`, `nbf`), or an opaque token checked at the
//! provider's RFC 7662 introspection endpoint, with answers cached no longer than the
//! token's `exp` and at most 60 s.
//!
//! Which provider sees which token: a JWT whose `iss` names a provider with
//! `accept_bearer` is verified with that provider's keys and sent nowhere. Any other token
//! is "opaque": it goes to the providers with `introspection_for_opaque` when one is so
//! pinned, else to every provider with `introspection`, in configuration order, until one
//! calls it active.
//!
//! Introspection is bounded (SPEC 7): one upstream call per token per
//! [`REFUSAL_CACHE_SECONDS`] however many requests carry it (answers, refusals included,
//! are cached by a hash of the token; concurrent requests with the same token share one
//! call), and at most [`MAX_CONCURRENT_INTROSPECTIONS`] calls in flight overall.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde_json::{Map, Value};
use tokio::sync::{OnceCell, Semaphore};

use super::jwt::{self, TokenKind, audience_contains, numeric_date};
use super::token_endpoint::capped_expiry;
use super::token_endpoint::{TokenClient, authenticated_post};
use super::{Provider, ProviderRegistry};
use crate::clock::unix_now;
use crate::crypto;
use crate::oidc::claims::map_profile;
use crate::oidc::jwt::jwt_payload;
use crate::session::Profile;

/// Longest time an introspection answer is reused.
pub const INTROSPECTION_CACHE_SECONDS: i64 = 60;

/// How long a refused token (inactive, or the endpoint failed) is refused without asking
/// the provider again.
pub const REFUSAL_CACHE_SECONDS: i64 = 10;

/// Introspection calls in flight at once, over all tokens and providers.
pub const MAX_CONCURRENT_INTROSPECTIONS: usize = 16;

/// How long a request waits for an introspection slot before it is refused.
const INTROSPECTION_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Entries above this count trigger a sweep of expired ones.
const CACHE_SWEEP_THRESHOLD: usize = 10_000;

/// Why a bearer token was refused: the failed check, and the provider when known.
#[derive(Clone, Debug)]
pub struct BearerRefusal {
    /// The provider that judged the token, when one did.
    pub provider: Option<String>,
    /// The check that failed (never the token).
    pub check: &'static str,
}

impl BearerRefusal {
    fn new(provider: Option<&Provider>, check: &'static str) -> Self {
        Self {
            provider: provider.map(|provider| provider.id().to_owned()),
            check,
        }
    }
}

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

/// One introspection outcome, shared by every request that carried the token until `until`.
#[derive(Clone)]
struct Introspected {
    until: i64,
    outcome: Result<BearerIdentity, BearerRefusal>,
}

/// Verifies bearer tokens and caches introspection answers.
#[derive(Clone)]
pub struct BearerVerifier {
    introspected: Arc<DashMap<String, Arc<OnceCell<Introspected>>>>,
    permits: Arc<Semaphore>,
}

impl Default for BearerVerifier {
    fn default() -> Self {
        Self {
            introspected: Arc::default(),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_INTROSPECTIONS)),
        }
    }
}

impl BearerVerifier {
    /// Who `token` belongs to; `Err` with the failed check when it is not acceptable.
    pub async fn verify(
        &self,
        providers: &ProviderRegistry,
        http: &reqwest::Client,
        token: &str,
    ) -> Result<BearerIdentity, BearerRefusal> {
        let issuer = jwt_payload(token)
            .and_then(|claims| claims.get("iss").and_then(Value::as_str).map(str::to_owned));
        if let Some(issuer) = issuer
            && let Some(provider) = providers
                .all()
                .iter()
                .find(|provider| provider.config.accept_bearer && provider.issuer() == issuer)
        {
            return verify_jwt(provider, http, token)
                .await
                .map_err(|check| BearerRefusal::new(Some(provider), check));
        }
        let introspecting = opaque_token_providers(providers);
        if introspecting.is_empty() {
            return Err(BearerRefusal::new(
                None,
                "the token is not from a provider that accepts bearer tokens",
            ));
        }
        self.introspect_once(&introspecting, http, token).await
    }

    /// The cached or shared answer for `token`, asking upstream only when there is none.
    async fn introspect_once(
        &self,
        providers: &[&Arc<Provider>],
        http: &reqwest::Client,
        token: &str,
    ) -> Result<BearerIdentity, BearerRefusal> {
        let key = crypto::derive_name("bearer-token", token.as_bytes());
        let now = unix_now();
        if self.introspected.len() > CACHE_SWEEP_THRESHOLD {
            self.introspected
                .retain(|_, cell| cell.get().is_none_or(|answer| answer.until > now));
        }
        let cell = match self.introspected.entry(key) {
            Entry::Occupied(mut entry) => {
                if entry.get().get().is_some_and(|answer| answer.until <= now) {
                    entry.insert(Arc::new(OnceCell::new()));
                }
                entry.get().clone()
            }
            Entry::Vacant(entry) => entry.insert(Arc::new(OnceCell::new())).clone(),
        };
        let answer = cell
            .get_or_init(async || {
                let (outcome, cache_seconds) = self.introspect_all(providers, http, token).await;
                let now = unix_now();
                let until = match &outcome {
                    Ok(identity) => identity
                        .expires_at
                        .min(now.saturating_add(INTROSPECTION_CACHE_SECONDS)),
                    Err(_) => now.saturating_add(cache_seconds),
                };
                Introspected { until, outcome }
            })
            .await;
        answer.outcome.clone()
    }

    /// Asks each provider in turn (one slot of the overall bound held throughout); the
    /// second value is how long a refusal may be reused.
    async fn introspect_all(
        &self,
        providers: &[&Arc<Provider>],
        http: &reqwest::Client,
        token: &str,
    ) -> (Result<BearerIdentity, BearerRefusal>, i64) {
        let Ok(Ok(_permit)) =
            tokio::time::timeout(INTROSPECTION_QUEUE_WAIT, self.permits.acquire()).await
        else {
            // Our own limit, not the token's fault: nothing to remember.
            return (
                Err(BearerRefusal::new(
                    None,
                    "too many introspection calls are in flight",
                )),
                0,
            );
        };
        let mut last = None;
        for provider in providers {
            match introspect(provider, http, token).await {
                Ok(Some(identity)) => return (Ok(identity), 0),
                Ok(None) => {
                    last = Some(BearerRefusal::new(
                        Some(provider),
                        "the token is not active",
                    ))
                }
                Err(check) => {
                    return (
                        Err(BearerRefusal::new(Some(provider), check)),
                        REFUSAL_CACHE_SECONDS,
                    );
                }
            }
        }
        (
            Err(last.unwrap_or_else(|| BearerRefusal::new(None, "the token is not active"))),
            REFUSAL_CACHE_SECONDS,
        )
    }
}

/// The providers an opaque token may be shown to: the pinned ones
/// (`introspection_for_opaque`), else every provider with bearer introspection.
fn opaque_token_providers(providers: &ProviderRegistry) -> Vec<&Arc<Provider>> {
    let introspecting = || {
        providers
            .all()
            .iter()
            .filter(|provider| provider.config.accept_bearer && provider.config.introspection)
    };
    let pinned: Vec<_> = introspecting()
        .filter(|provider| provider.config.introspection_for_opaque)
        .collect();
    if pinned.is_empty() {
        introspecting().collect()
    } else {
        pinned
    }
}

async fn verify_jwt(
    provider: &Provider,
    http: &reqwest::Client,
    token: &str,
) -> Result<BearerIdentity, &'static str> {
    let verified = jwt::verify_signature(provider, http, token, TokenKind::AccessToken)
        .await
        .map_err(jwt::SignatureRefusal::check)?;
    refuse_id_token(&verified, &provider.config.client_id)?;
    let claims = verified.claims;
    let now = unix_now();
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer().as_str()) {
        return Err("the iss claim does not name the provider");
    }
    if !audience_contains(&claims, &provider.config.bearer_audience) {
        return Err("the aud claim does not contain the bearer audience");
    }
    let expires_at = numeric_date(&claims, "exp").ok_or("the exp claim is missing")?;
    let expires_at = capped_expiry(now, expires_at);
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

/// An ID token is never a bearer credential (SPEC 5): it is addressed to our client id
/// (often also the bearer audience) and travels in URLs as `id_token_hint`. The rule:
/// - a `typ` header other than `at+jwt` (RFC 9068 section 2.1) or plain `JWT` is refused;
/// - claims only ID tokens carry (`nonce`, `at_hash`, `c_hash`, `s_hash`; OIDC Core
///   3.1.3.6, 3.3.2.11) or Keycloak's `typ: "ID"` claim are refused;
/// - a token not typed `at+jwt` whose `aud` contains our client id must show an
///   access-token claim (`scope`, `scp`, `client_id`, or Keycloak's `typ: "Bearer"`): a
///   refreshed ID token without `nonce` has none of them.
fn refuse_id_token(verified: &jwt::VerifiedJwt, client_id: &str) -> Result<(), &'static str> {
    let typed_access_token = match &verified.header.typ {
        None => false,
        Some(typ)
            if ["at+jwt", "application/at+jwt"]
                .iter()
                .any(|allowed| typ.eq_ignore_ascii_case(allowed)) =>
        {
            true
        }
        Some(typ) if typ.eq_ignore_ascii_case("JWT") => false,
        Some(_) => return Err("its typ header is not that of an access token"),
    };
    let claims = &verified.claims;
    if ["nonce", "at_hash", "c_hash", "s_hash"]
        .iter()
        .any(|name| claims.contains_key(*name))
        || claims.get("typ").and_then(Value::as_str) == Some("ID")
    {
        return Err("it is an ID token, not an access token");
    }
    let shows_access_claim = ["scope", "scp", "client_id"]
        .iter()
        .any(|name| claims.contains_key(*name))
        || claims.get("typ").and_then(Value::as_str) == Some("Bearer");
    if !typed_access_token && audience_contains(claims, client_id) && !shows_access_claim {
        return Err("it is addressed to our client_id and shows no access-token claim");
    }
    Ok(())
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
        tracing::info!(provider = %provider.id(), status = %response.status(), "introspection endpoint refused the request");
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
    let expires_at = numeric_date(&answer, "exp")
        .map_or(now + INTROSPECTION_CACHE_SECONDS, |exp| {
            capped_expiry(now, exp)
        });
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
