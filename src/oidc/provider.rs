//! One configured OpenID provider at run time: its discovery document and signing keys,
//! loaded in the background, retried while the provider is down, and refetched (at most
//! once per [`JWKS_REFETCH_INTERVAL`]) when a token names a key we do not know.
//!
//! Health (SPEC 7): a login trusts a provider that answered within [`LOGIN_FRESHNESS`];
//! older, one cheap check (a GET of the discovery document, keys only when it changed)
//! runs with a deadline of [`CHECK_DEADLINE`], one at a time, and concurrent logins take
//! its result. A failed check is believed for [`FAILURE_MEMORY`]: logins answer
//! `PROVIDER_UNAVAILABLE` at once while a background watcher keeps checking, so a
//! recovery is noticed without a login paying for it.

use super::client_auth::KeyFileError;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;

use openidconnect::core::{CoreClient, CoreJsonWebKeySet, CoreProviderMetadata};
use openidconnect::{
    ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet, RedirectUrl,
};
use serde::Deserialize;
use url::Url;

use super::authorize_url::AuthorizeUrlBase;
use super::client_auth::ClientKey;
use crate::arcgis::Portal;
use crate::config::{ClientAuth, ParMode, Profile, ProviderConfig};
use crate::error::ApiError;
pub use crate::upstream_health::{CHECK_DEADLINE, FAILURE_MEMORY, LOGIN_FRESHNESS};
use crate::upstream_health::{CHECK_WAIT, CheckMemo, RETRY_FIRST, RETRY_LONGEST};

/// The openidconnect client type we build from discovery (auth URL set, token and
/// userinfo endpoints as the provider advertises them).
pub type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A flood of tokens with unknown `kid`s may cause at most one JWKS fetch per interval.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// What discovery told us about a provider.
pub struct Discovered {
    /// The issuer exactly as the provider spells it.
    pub issuer: String,
    /// Client for the code flow and ID token checks.
    pub client: OidcClient,
    /// What every authorization request to this provider shares.
    pub authorize_url: AuthorizeUrlBase,
    /// The provider's keys, for logout tokens and bearer tokens.
    pub jwks: jsonwebtoken::jwk::JwkSet,
    /// Token endpoint.
    pub token_endpoint: Option<Url>,
    /// Userinfo endpoint.
    pub userinfo_endpoint: Option<Url>,
    /// RP-initiated logout endpoint.
    pub end_session_endpoint: Option<Url>,
    /// RFC 7662 endpoint (configured or discovered).
    pub introspection_endpoint: Option<Url>,
    /// RFC 7009 token revocation endpoint (SPEC 11), when announced.
    pub revocation_endpoint: Option<Url>,
    /// The one algorithm of this client's ID tokens, refreshed ID tokens and logout tokens
    /// (`id_token_signed_response_alg`, or chosen from discovery); see
    /// [`super::jwt::id_token_algorithm`].
    pub id_token_algorithm: Algorithm,
    /// The authorization endpoint (the browser goes there, with PAR only with
    /// `client_id` and `request_uri`).
    pub authorization_endpoint: Url,
    /// RFC 9126 `pushed_authorization_request_endpoint`.
    pub par_endpoint: Option<Url>,
    /// Whether logins push their authorization requests (`par` with what discovery says).
    pub push_requests: bool,
    /// RFC 9449 `dpop_signing_alg_values_supported` (empty: not advertised).
    pub dpop_algorithms: Vec<String>,
    /// The discovery document as fetched, to tell whether a check found it changed.
    document: Vec<u8>,
}

/// Discovery fields openidconnect's core metadata does not carry.
#[derive(Deserialize)]
struct ExtraMetadata {
    issuer: String,
    jwks_uri: Url,
    #[serde(default)]
    token_endpoint: Option<Url>,
    #[serde(default)]
    userinfo_endpoint: Option<Url>,
    #[serde(default)]
    end_session_endpoint: Option<Url>,
    #[serde(default)]
    introspection_endpoint: Option<Url>,
    #[serde(default)]
    revocation_endpoint: Option<Url>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
    authorization_endpoint: Url,
    #[serde(default)]
    pushed_authorization_request_endpoint: Option<Url>,
    #[serde(default)]
    require_pushed_authorization_requests: bool,
    #[serde(default)]
    dpop_signing_alg_values_supported: Vec<String>,
}

/// A provider: configuration plus what was discovered (once it has been).
pub struct Provider {
    /// Its configuration.
    pub config: ProviderConfig,
    /// The key for `private_key_jwt` client authentication, when configured.
    pub client_key: Option<ClientKey>,
    /// The provider's last `DPoP-Nonce` (RFC 9449 section 8).
    pub dpop_nonce: super::dpop::DpopNonce,
    redirect_uri: RedirectUrl,
    discovered: RwLock<Option<Arc<Discovered>>>,
    last_problem: RwLock<String>,
    last_jwks_fetch: Mutex<Option<Instant>>,
    /// When the provider last answered a check, and when one last failed.
    health: Mutex<CheckMemo>,
    check_lock: tokio::sync::Mutex<()>,
    failure_noticed: tokio::sync::Notify,
    /// The portal of a `kind = "arcgis"` provider (SPEC 10); the provider's operations
    /// go there instead of to discovery.
    portal: Option<Portal>,
}

impl Provider {
    /// A provider whose callback is `redirect_uri`; nothing is fetched yet. Fails when a
    /// configured client key cannot be read.
    pub fn new(config: ProviderConfig, redirect_uri: RedirectUrl) -> Result<Self, KeyFileError> {
        let client_key = match &config.client_auth {
            ClientAuth::PrivateKeyJwt { key_file } => {
                let fapi2 = config.profile == Profile::Fapi2;
                let key = ClientKey::from_pem_file_for(key_file, config.private_key_alg, fapi2)?;
                // FAPI 2.0 Security Profile 5.3.2.1: the assertion's audience is the issuer.
                Some(match fapi2 {
                    true => key.with_audience(trim_root_slash(&config.issuer)),
                    false => key,
                })
            }
            _ => None,
        };
        let portal = Portal::new(&config, redirect_uri.as_str());
        Ok(Self {
            config,
            portal,
            client_key,
            dpop_nonce: super::dpop::DpopNonce::default(),
            redirect_uri,
            discovered: RwLock::new(None),
            last_problem: RwLock::new("discovery not loaded yet".to_owned()),
            last_jwks_fetch: Mutex::new(None),
            health: Mutex::new(CheckMemo::default()),
            check_lock: tokio::sync::Mutex::new(()),
            failure_noticed: tokio::sync::Notify::new(),
        })
    }

    /// The configured id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The portal, for a `kind = "arcgis"` provider.
    pub fn portal(&self) -> Option<&Portal> {
        self.portal.as_ref()
    }

    /// The issuer as discovered, else as configured.
    pub fn issuer(&self) -> String {
        match self.current() {
            Some(discovered) => discovered.issuer.clone(),
            None => trim_root_slash(&self.config.issuer),
        }
    }

    /// What discovery loaded, if it has.
    pub fn current(&self) -> Option<Arc<Discovered>> {
        self.discovered.read().ok().and_then(|guard| guard.clone())
    }

    /// `"ok"` or the last discovery problem (for `/health/ready`).
    pub fn status(&self) -> String {
        if let Some(portal) = &self.portal {
            return portal.health.status();
        }
        if self.current().is_some() {
            "ok".to_owned()
        } else {
            self.last_problem
                .read()
                .map(|text| text.clone())
                .unwrap_or_default()
        }
    }

    /// The discovered provider, loading it now if the background loader has not yet (within
    /// [`CHECK_DEADLINE`], or at once `PROVIDER_UNAVAILABLE` after a recent failure).
    pub async fn discovered(&self, http: &reqwest::Client) -> Result<Arc<Discovered>, ApiError> {
        if let Some(discovered) = self.current() {
            return Ok(discovered);
        }
        self.checked(http).await
    }

    /// The discovered provider for a new login: it answered within [`LOGIN_FRESHNESS`], or
    /// a check (shared with concurrent logins) finds it answering; else
    /// `PROVIDER_UNAVAILABLE` within [`CHECK_WAIT`].
    pub async fn discovered_for_login(
        &self,
        http: &reqwest::Client,
    ) -> Result<Arc<Discovered>, ApiError> {
        if let Some(discovered) = self.fresh() {
            return Ok(discovered);
        }
        self.checked(http).await
    }

    /// One check at a time; requests that waited for it take its result.
    async fn checked(&self, http: &reqwest::Client) -> Result<Arc<Discovered>, ApiError> {
        let unavailable = || ApiError::ProviderUnavailable(self.config.id.clone());
        // A portal has no discovery: the OpenID operations are not its.
        if self.recently_failed() || self.portal.is_some() {
            return Err(unavailable());
        }
        let outcome = tokio::time::timeout(CHECK_WAIT, async {
            let _one_at_a_time = self.check_lock.lock().await;
            if let Some(discovered) = self.fresh() {
                return Some(discovered);
            }
            if self.recently_failed() {
                return None;
            }
            self.check(http).await.ok()
        })
        .await;
        match outcome {
            Ok(Some(discovered)) => Ok(discovered),
            Ok(None) | Err(_) => Err(unavailable()),
        }
    }

    /// Discovered, and the provider answered within [`LOGIN_FRESHNESS`].
    fn fresh(&self) -> Option<Arc<Discovered>> {
        let recent = self
            .health
            .lock()
            .ok()
            .is_some_and(|health| health.answered_within(LOGIN_FRESHNESS));
        if recent { self.current() } else { None }
    }

    /// The last check failed, less than [`FAILURE_MEMORY`] ago.
    fn recently_failed(&self) -> bool {
        self.health
            .lock()
            .ok()
            .is_some_and(|health| health.failed_within(FAILURE_MEMORY))
    }

    /// Asks the provider, within [`CHECK_DEADLINE`]: its discovery document, and its keys
    /// too when nothing is loaded yet or the document changed. Records the outcome.
    async fn check(&self, http: &reqwest::Client) -> Result<Arc<Discovered>, String> {
        let attempt = async {
            let document = get_bytes(http, &self.discovery_url(), "discovery").await?;
            match self.current() {
                Some(current) if current.document == document => Ok(current),
                _ => self.install(self.build(http, document).await?),
            }
        };
        let outcome = match tokio::time::timeout(CHECK_DEADLINE, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "discovery did not answer within {} ms",
                CHECK_DEADLINE.as_millis()
            )),
        };
        self.record(&outcome);
        outcome
    }

    /// Fetches discovery and keys and installs them.
    pub async fn load(&self, http: &reqwest::Client) -> Result<Arc<Discovered>, String> {
        let outcome = match self.fetch(http).await {
            Ok(discovered) => self.install(discovered),
            Err(problem) => Err(problem),
        };
        self.record(&outcome);
        outcome
    }

    fn install(&self, discovered: Discovered) -> Result<Arc<Discovered>, String> {
        let discovered = Arc::new(discovered);
        if let Ok(mut slot) = self.discovered.write() {
            *slot = Some(discovered.clone());
        }
        Ok(discovered)
    }

    fn record(&self, outcome: &Result<Arc<Discovered>, String>) {
        let Ok(mut health) = self.health.lock() else {
            return;
        };
        match outcome {
            Ok(_) => health.succeeded(),
            Err(problem) => {
                let was_failing = health.failed();
                drop(health);
                if !was_failing {
                    tracing::warn!(provider = %self.config.id, %problem, "provider check failed");
                }
                if let Ok(mut slot) = self.last_problem.write() {
                    slot.clone_from(problem);
                }
                self.failure_noticed.notify_one();
            }
        }
    }

    /// Refetches discovery and keys after a token named an unknown key; `None` when a
    /// refetch happened too recently or failed.
    pub async fn refresh_keys(&self, http: &reqwest::Client) -> Option<Arc<Discovered>> {
        {
            let mut last = self.last_jwks_fetch.lock().ok()?;
            if last.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
                return None;
            }
            *last = Some(Instant::now());
        }
        self.load(http).await.ok()
    }

    /// Runs for the life of the service: loads discovery until it has, then, whenever a
    /// check fails, checks again (backing off from [`RETRY_FIRST`] to [`RETRY_LONGEST`])
    /// until the provider answers, so logins need not pay for noticing a recovery.
    pub async fn watch(self: Arc<Self>, http: reqwest::Client) {
        if let Some(portal) = &self.portal {
            return portal.watch(http).await;
        }
        let mut delay = RETRY_FIRST;
        loop {
            let failing = self
                .health
                .lock()
                .ok()
                .is_none_or(|health| health.failing());
            if self.current().is_some() && !failing {
                delay = RETRY_FIRST;
                self.failure_noticed.notified().await;
                continue;
            }
            let checked = {
                let _one_at_a_time = self.check_lock.lock().await;
                self.check(&http).await
            };
            if checked.is_ok() {
                tracing::info!(provider = %self.config.id, "provider answers");
                continue;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_LONGEST);
        }
    }

    fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            trim_root_slash(&self.config.issuer)
        )
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<Discovered, String> {
        let document = get_bytes(http, &self.discovery_url(), "discovery").await?;
        self.build(http, document).await
    }

    /// Discovery from `document`, with the keys it names.
    async fn build(&self, http: &reqwest::Client, document: Vec<u8>) -> Result<Discovered, String> {
        let issuer = trim_root_slash(&self.config.issuer);
        let extra: ExtraMetadata = serde_json::from_slice(&document)
            .map_err(|error| format!("discovery document is invalid: {error}"))?;
        if trim_slash(&extra.issuer) != trim_slash(&issuer) {
            return Err(format!(
                "discovery names issuer {} instead of {issuer}",
                extra.issuer
            ));
        }
        let push_requests = self.high_assurance_ready(&extra)?;
        let id_token_algorithm = self.id_token_algorithm(&extra)?;
        let metadata: CoreProviderMetadata = serde_json::from_slice(&document)
            .map_err(|error| format!("discovery document is invalid: {error}"))?;
        let keys = get_bytes(http, extra.jwks_uri.as_str(), "jwks").await?;
        let core_jwks: CoreJsonWebKeySet =
            serde_json::from_slice(&keys).map_err(|error| format!("JWKS is invalid: {error}"))?;
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_slice(&keys).map_err(|error| format!("JWKS is invalid: {error}"))?;
        let secret = match &self.config.client_auth {
            ClientAuth::ClientSecretBasic { secret } | ClientAuth::ClientSecretPost { secret } => {
                Some(ClientSecret::new(secret.expose().to_owned()))
            }
            ClientAuth::PrivateKeyJwt { .. } | ClientAuth::None => None,
        };
        let authorize_url = AuthorizeUrlBase::new(
            metadata.authorization_endpoint().url(),
            &self.config.client_id,
            self.redirect_uri.as_str(),
            &self.config.scopes,
        );
        let mut client = CoreClient::from_provider_metadata(
            metadata.set_jwks(core_jwks),
            ClientId::new(self.config.client_id.clone()),
            secret,
        )
        .set_redirect_uri(self.redirect_uri.clone());
        if matches!(self.config.client_auth, ClientAuth::ClientSecretPost { .. }) {
            client = client.set_auth_type(openidconnect::AuthType::RequestBody);
        }
        Ok(Discovered {
            issuer: extra.issuer,
            client,
            authorize_url,
            jwks,
            token_endpoint: extra.token_endpoint,
            userinfo_endpoint: extra.userinfo_endpoint,
            end_session_endpoint: extra.end_session_endpoint,
            introspection_endpoint: self
                .config
                .introspection_endpoint
                .clone()
                .or(extra.introspection_endpoint),
            revocation_endpoint: extra.revocation_endpoint,
            id_token_algorithm,
            authorization_endpoint: extra.authorization_endpoint,
            par_endpoint: extra.pushed_authorization_request_endpoint,
            push_requests,
            dpop_algorithms: extra.dpop_signing_alg_values_supported,
            document,
        })
    }

    /// The one ID token algorithm (SPEC 3): `id_token_signed_response_alg`, else from
    /// discovery; with `fapi2` only PS256, ES256 or EdDSA (FAPI 2.0 Security Profile 5.4.1),
    /// the first of them discovery lists; none makes the provider not ready.
    fn id_token_algorithm(&self, extra: &ExtraMetadata) -> Result<Algorithm, String> {
        let listed = &extra.id_token_signing_alg_values_supported;
        if self.config.profile != Profile::Fapi2
            || self.config.id_token_signed_response_alg.is_some()
        {
            return super::jwt::id_token_algorithm(
                self.config.id_token_signed_response_alg,
                listed,
            );
        }
        [("PS256", Algorithm::PS256), ("ES256", Algorithm::ES256), ("EdDSA", Algorithm::EdDSA)]
            .into_iter()
            .find(|(name, _)| listed.iter().any(|listed| listed == name))
            .map(|(_, algorithm)| algorithm)
            .ok_or_else(|| {
                "id_token_signing_alg_values_supported names none of PS256, ES256, EdDSA (profile fapi2)"
                    .to_owned()
            })
    }

    /// SPEC 12: whether logins push their requests, or why discovery lacks what `par`,
    /// `dpop` and `profile = "fapi2"` need (the provider is then not ready and its logins
    /// answer 502).
    fn high_assurance_ready(&self, extra: &ExtraMetadata) -> Result<bool, String> {
        let push = match self.config.par {
            ParMode::Always => true,
            ParMode::Never => false,
            // RFC 9126 section 5.
            ParMode::Auto => extra.require_pushed_authorization_requests,
        };
        if push && extra.pushed_authorization_request_endpoint.is_none() {
            return Err(
                "discovery names no pushed_authorization_request_endpoint (PAR is required)"
                    .to_owned(),
            );
        }
        if (self.config.dpop || self.config.profile == Profile::Fapi2)
            && extra.token_endpoint.is_none()
        {
            return Err("discovery names no token_endpoint (DPoP and FAPI 2.0 need it)".to_owned());
        }
        // RFC 9449 section 5.1: we sign ES256; a provider listing others only cannot take it.
        if self.config.dpop
            && !extra.dpop_signing_alg_values_supported.is_empty()
            && !extra
                .dpop_signing_alg_values_supported
                .iter()
                .any(|alg| alg == super::dpop::DPOP_ALGORITHM)
        {
            return Err("dpop_signing_alg_values_supported lacks ES256 (dpop = true)".to_owned());
        }
        Ok(push)
    }
}

async fn get_bytes(
    http: &reqwest::Client,
    url: &str,
    call: &'static str,
) -> Result<Vec<u8>, String> {
    let request = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    let response = crate::http_client::send(request, call)
        .await
        .map_err(|error| format!("GET {url} failed: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url} answered {}", response.status()));
    }
    response
        .bytes()
        .await
        .map(|bytes| bytes.to_vec())
        .map_err(|error| format!("GET {url} failed: {error}"))
}

/// `http://host/` → `http://host` (URL parsing adds a root slash that issuers omit).
fn trim_root_slash(url: &Url) -> String {
    let text = url.as_str();
    if url.path() == "/" && url.query().is_none() {
        text.trim_end_matches('/').to_owned()
    } else {
        text.to_owned()
    }
}

fn trim_slash(text: &str) -> &str {
    text.trim_end_matches('/')
}
