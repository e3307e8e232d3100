//! Bearer callers (SPEC 5): a provider's JWT access token verified against its JWKS
//! (`iss`, `aud` = `bearer_audience`, `exp`, `nbf`), or an opaque token checked at the
//! provider's RFC 7662 introspection endpoint, with answers cached no longer than the
//! token's `exp` and at most 60 s.
//!
//! Which provider sees which token: a JWT whose `iss` names a provider with
//! `accept_bearer` is verified with that provider's keys and sent nowhere. Any other token
//! is "opaque": it goes to the providers with `introspection_for_opaque` when one is so
//! pinned, else to every provider with `introspection`, all at once; the first to call it
//! active wins.
//!
//! Introspection failures stay per provider (SPEC 7): each provider is asked on its own,
//! with its own bound of [`MAX_CONCURRENT_INTROSPECTIONS`] calls in flight and its own
//! [`INTROSPECTION_DEADLINE`], so one provider that is down or slow neither refuses nor
//! delays another's tokens. A token no provider called active while one of them could
//! not answer is not refused but unanswered ([`BearerRefusal::unavailable`]: 502
//! `PROVIDER_UNAVAILABLE`, not a refused credential for `[limits]`).
//!
//! Introspection is bounded (SPEC 7): one upstream call per token and provider per
//! [`REFUSAL_CACHE_SECONDS`] however many requests carry it (answers, refusals and
//! failures included, are cached by a hash of the token; concurrent requests with the
//! same token share one call, which runs as a task of its own so that it finishes and is
//! remembered even when the request that started it was answered by another provider).
//! The cache holds at most [`MAX_CACHED_ANSWERS`] answers, the least recently used
//! forgotten first.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dashmap::DashMap;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};
use tokio::sync::{OnceCell, Semaphore};

use super::jwt::{self, TokenKind, audience_contains, numeric_date};
use super::token_endpoint::capped_expiry;
use super::token_endpoint::{TokenClient, authenticated_post};
use super::{Provider, ProviderRegistry};
use crate::arcgis::{Portal, PortalError};
use crate::clock::unix_now;
use crate::crypto;
use crate::oidc::claims::map_profile;
use crate::oidc::jwt::jwt_payload;
use crate::session::Profile;

/// Longest time an introspection answer is reused.
pub const INTROSPECTION_CACHE_SECONDS: i64 = 60;

/// How long a refused token (inactive, or the provider failed to answer) is refused
/// without asking the provider again.
pub const REFUSAL_CACHE_SECONDS: i64 = 10;

/// Introspection calls in flight at once, per provider.
pub const MAX_CONCURRENT_INTROSPECTIONS: usize = 16;

/// How long one provider's answer is waited for (a slot among its calls in flight,
/// discovery and the call itself); past it the provider counts as unable to answer.
pub const INTROSPECTION_DEADLINE: Duration = Duration::from_secs(5);

/// Most introspection answers (per token and provider) kept at once.
pub const MAX_CACHED_ANSWERS: usize = 100_000;

/// Why a bearer token was refused: the failed check, and the provider when known.
#[derive(Clone, Debug)]
pub struct BearerRefusal {
    /// The provider that judged the token, when one did.
    pub provider: Option<String>,
    /// The check that failed (never the token).
    pub check: &'static str,
    /// `true` when no answer could be had (a provider that might know the token could not
    /// be asked in time): the token is not known to be bad.
    pub unavailable: bool,
}

impl BearerRefusal {
    fn new(provider: Option<&Provider>, check: &'static str) -> Self {
        Self {
            provider: provider.map(|provider| provider.id().to_owned()),
            check,
            unavailable: false,
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

/// What one provider said about one token.
#[derive(Clone)]
enum Answer {
    /// Active, and acceptable.
    Active(BearerIdentity),
    /// Not active, or not for us: the check that failed.
    Inactive(&'static str),
    /// No answer could be had: why.
    Unavailable(&'static str),
}

/// One provider's answer about one token, shared by every request that carried the token
/// until `until` (Unix seconds).
#[derive(Clone)]
struct Introspected {
    until: i64,
    answer: Answer,
}

/// The answers being or already had, per provider and token hash.
type AnswerCache = lru::LruCache<String, Arc<OnceCell<Introspected>>>;

/// Verifies bearer tokens and caches introspection answers.
#[derive(Clone)]
pub struct BearerVerifier {
    introspected: Arc<Mutex<AnswerCache>>,
    /// Each provider's slots for calls in flight, by provider id.
    permits: Arc<DashMap<String, Arc<Semaphore>>>,
}

impl Default for BearerVerifier {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(MAX_CACHED_ANSWERS).unwrap_or(NonZeroUsize::MIN);
        Self {
            introspected: Arc::new(Mutex::new(lru::LruCache::new(capacity))),
            permits: Arc::default(),
        }
    }
}

impl BearerVerifier {
    /// Who `token` belongs to; `Err` with the failed check when it is not acceptable, or
    /// with [`BearerRefusal::unavailable`] when no provider that might know it answered.
    pub async fn verify(
        &self,
        providers: &ProviderRegistry,
        http: &reqwest::Client,
        token: &str,
    ) -> Result<BearerIdentity, BearerRefusal> {
        let issuer = jwt_payload(token)
            .and_then(|claims| claims.get("iss").and_then(Value::as_str).map(str::to_owned));
        if let Some(issuer) = issuer
            && let Some(provider) = providers.all().iter().find(|provider| {
                provider.config.accept_bearer
                    && provider.portal().is_none()
                    && provider.issuer() == issuer
            })
        {
            return verify_jwt(provider, http, token)
                .await
                .map_err(|check| BearerRefusal::new(Some(provider), check));
        }
        // SPEC 10: a JWT never goes to a portal; any other token may be an ESRI token.
        let introspecting = opaque_token_providers(providers, jwt_payload(token).is_none());
        if introspecting.is_empty() {
            return Err(BearerRefusal::new(
                None,
                "the token is not from a provider that accepts bearer tokens",
            ));
        }
        self.introspect_everywhere(&introspecting, http, token)
            .await
    }

    /// Asks every provider at once (each answer cached or shared); the first that calls
    /// the token active wins. Otherwise: refused when every provider answered, else
    /// unavailable (naming the first provider, in configuration order, that did not).
    async fn introspect_everywhere(
        &self,
        providers: &[&Arc<Provider>],
        http: &reqwest::Client,
        token: &str,
    ) -> Result<BearerIdentity, BearerRefusal> {
        let token_hash = crypto::derive_name("bearer-token", token.as_bytes());
        let cells: Vec<_> = providers
            .iter()
            .map(|provider| self.cell(provider, &token_hash))
            .collect();
        // A known answer first: a token one provider accepted asks no other.
        if let Some(identity) = cells.iter().find_map(|cell| match cell.get() {
            Some(Introspected {
                answer: Answer::Active(identity),
                ..
            }) => Some(identity.clone()),
            _ => None,
        }) {
            return Ok(identity);
        }
        let mut pending: FuturesUnordered<_> = providers
            .iter()
            .zip(cells)
            .enumerate()
            .map(|(index, (provider, cell))| {
                let answer = self.answer(provider, http, token, cell);
                async move { (index, answer.await) }
            })
            .collect();
        let mut answers: Vec<Option<Answer>> = vec![None; providers.len()];
        while let Some((index, answer)) = pending.next().await {
            if let Answer::Active(identity) = answer {
                return Ok(identity);
            }
            if let Some(slot) = answers.get_mut(index) {
                *slot = Some(answer);
            }
        }
        let unavailable =
            providers
                .iter()
                .zip(&answers)
                .find_map(|(provider, answer)| match answer {
                    Some(Answer::Unavailable(check)) => Some((provider, *check)),
                    _ => None,
                });
        if let Some((provider, check)) = unavailable {
            return Err(BearerRefusal {
                unavailable: true,
                ..BearerRefusal::new(Some(provider), check)
            });
        }
        let refused = providers
            .iter()
            .zip(&answers)
            .rev()
            .find_map(|(provider, answer)| match answer {
                Some(Answer::Inactive(check)) => Some(BearerRefusal::new(Some(provider), check)),
                _ => None,
            });
        Err(refused.unwrap_or_else(|| BearerRefusal::new(None, "the token is not active")))
    }

    /// The cache cell for `provider`'s answer about the token: the current one, or a
    /// fresh one in place of an answer whose time has passed.
    fn cell(&self, provider: &Provider, token_hash: &str) -> Arc<OnceCell<Introspected>> {
        let key = format!("{}\n{token_hash}", provider.id());
        let now = unix_now();
        let mut cache = self
            .introspected
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(cell) = cache.get(&key)
            && cell.get().is_none_or(|answer| answer.until > now)
        {
            return cell.clone();
        }
        let cell = Arc::new(OnceCell::new());
        cache.put(key, cell.clone());
        cell
    }

    /// `provider`'s answer: from `cell` when it has one, else from one call shared by
    /// every request that waits on `cell`. The call runs as its own task: a request that
    /// stops waiting (another provider answered) does not cancel it.
    fn answer(
        &self,
        provider: &Arc<Provider>,
        http: &reqwest::Client,
        token: &str,
        cell: Arc<OnceCell<Introspected>>,
    ) -> impl std::future::Future<Output = Answer> + use<> {
        let known = cell.get().map(|introspected| introspected.answer.clone());
        let task = known.is_none().then(|| {
            let permits = self.permits(provider.id());
            let (provider, http, token) = (provider.clone(), http.clone(), token.to_owned());
            tokio::spawn(async move {
                cell.get_or_init(async || {
                    let (answer, cache_seconds) =
                        introspect_bounded(&provider, &http, &token, &permits).await;
                    let now = unix_now();
                    let until = match &answer {
                        Answer::Active(identity) => identity
                            .expires_at
                            .min(now.saturating_add(INTROSPECTION_CACHE_SECONDS)),
                        Answer::Inactive(_) | Answer::Unavailable(_) => {
                            now.saturating_add(cache_seconds)
                        }
                    };
                    Introspected { until, answer }
                })
                .await
                .answer
                .clone()
            })
        });
        async move {
            match (known, task) {
                (Some(answer), _) => answer,
                (None, Some(task)) => task
                    .await
                    .unwrap_or(Answer::Unavailable("the introspection call was stopped")),
                (None, None) => Answer::Unavailable("the introspection call was stopped"),
            }
        }
    }

    /// `provider`'s slots for calls in flight.
    fn permits(&self, provider: &str) -> Arc<Semaphore> {
        if let Some(permits) = self.permits.get(provider) {
            return permits.clone();
        }
        self.permits
            .entry(provider.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_CONCURRENT_INTROSPECTIONS)))
            .clone()
    }
}

/// One provider's answer within [`INTROSPECTION_DEADLINE`], holding one of its slots for
/// the call; the second value is how long the answer may be reused when it is not an
/// acceptance (0 when no call went upstream: nothing to spare the provider).
async fn introspect_bounded(
    provider: &Provider,
    http: &reqwest::Client,
    token: &str,
    permits: &Semaphore,
) -> (Answer, i64) {
    let deadline = tokio::time::Instant::now() + INTROSPECTION_DEADLINE;
    let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline, permits.acquire()).await else {
        // Our own bound, not the token's fault: nothing to remember.
        return (
            Answer::Unavailable("too many introspection calls to this provider are in flight"),
            0,
        );
    };
    match tokio::time::timeout_at(deadline, introspect(provider, http, token)).await {
        Ok(Ok(Some(identity))) => (Answer::Active(identity), 0),
        Ok(Ok(None)) => (
            Answer::Inactive("the token is not active"),
            REFUSAL_CACHE_SECONDS,
        ),
        Ok(Err(IntrospectionError::Refused(check))) => {
            (Answer::Inactive(check), REFUSAL_CACHE_SECONDS)
        }
        Ok(Err(IntrospectionError::Unavailable(check))) => {
            (Answer::Unavailable(check), REFUSAL_CACHE_SECONDS)
        }
        Err(_) => (
            Answer::Unavailable("the introspection endpoint did not answer in time"),
            REFUSAL_CACHE_SECONDS,
        ),
    }
}

/// The providers an opaque token may be shown to: the pinned ones
/// (`introspection_for_opaque`), else every provider with bearer introspection; and, for
/// a token that is not a JWT, every ArcGIS portal with `accept_bearer` (SPEC 10), all in
/// configuration order.
fn opaque_token_providers(providers: &ProviderRegistry, not_jwt: bool) -> Vec<&Arc<Provider>> {
    let introspecting = || {
        providers
            .all()
            .iter()
            .filter(|provider| provider.config.accept_bearer && provider.config.introspection)
    };
    let pinned: Vec<_> = introspecting()
        .filter(|provider| provider.config.introspection_for_opaque)
        .collect();
    let chosen = if pinned.is_empty() {
        introspecting().collect()
    } else {
        pinned
    };
    providers
        .all()
        .iter()
        .filter(|provider| {
            let portal = provider.portal().is_some() && provider.config.accept_bearer;
            (portal && not_jwt) || chosen.iter().any(|other| Arc::ptr_eq(other, provider))
        })
        .collect()
}

/// SPEC 10: an ESRI token is whoever the portal's `community/self` (POST, form `f=json`,
/// `token`) says it belongs to; the answer is reused for [`INTROSPECTION_CACHE_SECONDS`]
/// (`community/self` does not tell the token's lifetime).
async fn portal_identity(
    provider: &Provider,
    portal: &Portal,
    http: &reqwest::Client,
    token: &str,
) -> Result<Option<BearerIdentity>, IntrospectionError> {
    match portal.profile(http, token).await {
        Ok(claims) => {
            let expires_at = unix_now().saturating_add(INTROSPECTION_CACHE_SECONDS);
            identity(provider, &claims, expires_at, token)
                .map(Some)
                .map_err(IntrospectionError::Refused)
        }
        Err(PortalError::Refused { .. }) => Err(IntrospectionError::Refused(
            "the portal does not accept the token (community/self)",
        )),
        Err(PortalError::Unusable(_)) => Err(IntrospectionError::Refused(
            "the portal's community/self names no user",
        )),
        Err(PortalError::Unavailable(_)) => Err(IntrospectionError::Unavailable(
            "the portal could not be asked (community/self)",
        )),
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

/// Why an introspection call gave no acceptance.
enum IntrospectionError {
    /// The provider answered, and the token is not acceptable: the check that failed.
    Refused(&'static str),
    /// The provider could not answer: why.
    Unavailable(&'static str),
}

/// RFC 7662: `Ok(None)` for an inactive token, `Err` when the token is active but not
/// acceptable or the endpoint cannot answer.
async fn introspect(
    provider: &Provider,
    http: &reqwest::Client,
    token: &str,
) -> Result<Option<BearerIdentity>, IntrospectionError> {
    use IntrospectionError::Unavailable;
    if let Some(portal) = provider.portal() {
        return portal_identity(provider, portal, http, token).await;
    }
    let discovered = provider
        .discovered(http)
        .await
        .map_err(|_| Unavailable("the provider is unavailable"))?;
    let endpoint = discovered
        .introspection_endpoint
        .clone()
        .ok_or(Unavailable("the provider has no introspection endpoint"))?;
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
    let request = authenticated_post(http, &endpoint, &client, form)
        .map_err(|_| Unavailable("the client assertion could not be signed"))?
        .timeout(INTROSPECTION_DEADLINE);
    let response = crate::http_client::send(request, "introspection")
        .await
        .map_err(|_| Unavailable("the introspection endpoint could not be reached"))?;
    if !response.status().is_success() {
        tracing::info!(provider = %provider.id(), status = %response.status(), "introspection endpoint refused the request");
        return Err(Unavailable(
            "the introspection endpoint refused the request",
        ));
    }
    let answer: Map<String, Value> = response
        .json()
        .await
        .map_err(|_| Unavailable("the introspection answer is not JSON"))?;
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
    identity(provider, &claims, expires_at, token)
        .map(Some)
        .map_err(IntrospectionError::Refused)
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
