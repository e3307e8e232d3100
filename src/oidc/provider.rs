//! One configured OpenID provider at run time: its discovery document and signing keys,
//! loaded in the background, retried while the provider is down, and refetched (at most
//! once per [`JWKS_REFETCH_INTERVAL`]) when a token names a key we do not know.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{CoreClient, CoreJsonWebKeySet, CoreProviderMetadata};
use openidconnect::{
    ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet, RedirectUrl,
};
use serde::Deserialize;
use url::Url;

use super::client_auth::ClientKey;
use crate::config::{ClientAuth, ProviderConfig};
use crate::error::ApiError;

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

/// A new login trusts discovery this recent; older, the provider is asked again first, so
/// a provider that went down answers `PROVIDER_UNAVAILABLE` instead of a dead redirect.
pub const LOGIN_FRESHNESS: Duration = Duration::from_secs(1);

/// What discovery told us about a provider.
pub struct Discovered {
    /// The issuer exactly as the provider spells it.
    pub issuer: String,
    /// Client for the code flow and ID token checks.
    pub client: OidcClient,
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
}

/// A provider: configuration plus what was discovered (once it has been).
pub struct Provider {
    /// Its configuration.
    pub config: ProviderConfig,
    /// The key for `private_key_jwt` client authentication, when configured.
    pub client_key: Option<ClientKey>,
    redirect_uri: RedirectUrl,
    discovered: RwLock<Option<Arc<Discovered>>>,
    last_problem: RwLock<String>,
    last_jwks_fetch: Mutex<Option<Instant>>,
    last_success: Mutex<Option<Instant>>,
    login_probe: tokio::sync::Mutex<()>,
}

impl Provider {
    /// A provider whose callback is `redirect_uri`; nothing is fetched yet. Fails when a
    /// configured client key cannot be read.
    pub fn new(config: ProviderConfig, redirect_uri: RedirectUrl) -> Result<Self, String> {
        let client_key = match &config.client_auth {
            ClientAuth::PrivateKeyJwt { key_file } => Some(ClientKey::from_pem_file(key_file)?),
            _ => None,
        };
        Ok(Self {
            config,
            client_key,
            redirect_uri,
            discovered: RwLock::new(None),
            last_problem: RwLock::new("discovery not loaded yet".to_owned()),
            last_jwks_fetch: Mutex::new(None),
            last_success: Mutex::new(None),
            login_probe: tokio::sync::Mutex::new(()),
        })
    }

    /// The configured id.
    pub fn id(&self) -> &str {
        &self.config.id
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
        if self.current().is_some() {
            "ok".to_owned()
        } else {
            self.last_problem
                .read()
                .map(|text| text.clone())
                .unwrap_or_default()
        }
    }

    /// The discovered provider, loading it now if the background loader has not yet.
    pub async fn discovered(&self, http: &reqwest::Client) -> Result<Arc<Discovered>, ApiError> {
        if let Some(discovered) = self.current() {
            return Ok(discovered);
        }
        self.load(http)
            .await
            .map_err(|_| ApiError::ProviderUnavailable(self.config.id.clone()))
    }

    /// The discovered provider for a new login: confirmed reachable within
    /// [`LOGIN_FRESHNESS`] (one probe at a time), else `PROVIDER_UNAVAILABLE`.
    pub async fn discovered_for_login(
        &self,
        http: &reqwest::Client,
    ) -> Result<Arc<Discovered>, ApiError> {
        if let Some(discovered) = self.fresh() {
            return Ok(discovered);
        }
        let _probe = self.login_probe.lock().await;
        if let Some(discovered) = self.fresh() {
            return Ok(discovered);
        }
        self.load(http)
            .await
            .map_err(|_| ApiError::ProviderUnavailable(self.config.id.clone()))
    }

    fn fresh(&self) -> Option<Arc<Discovered>> {
        let recent = self
            .last_success
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < LOGIN_FRESHNESS);
        if recent { self.current() } else { None }
    }

    /// Fetches discovery and keys and installs them.
    pub async fn load(&self, http: &reqwest::Client) -> Result<Arc<Discovered>, String> {
        match self.fetch(http).await {
            Ok(discovered) => {
                let discovered = Arc::new(discovered);
                if let Ok(mut slot) = self.discovered.write() {
                    *slot = Some(discovered.clone());
                }
                if let Ok(mut at) = self.last_success.lock() {
                    *at = Some(Instant::now());
                }
                Ok(discovered)
            }
            Err(problem) => {
                tracing::warn!(provider = %self.config.id, %problem, "provider discovery failed");
                if let Ok(mut slot) = self.last_problem.write() {
                    slot.clone_from(&problem);
                }
                Err(problem)
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

    /// Keeps trying discovery (with backoff up to a minute) until it has loaded once.
    pub async fn load_until_ready(self: Arc<Self>, http: reqwest::Client) {
        let mut delay = Duration::from_millis(500);
        while self.current().is_none() {
            if self.load(&http).await.is_ok() {
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<Discovered, String> {
        let issuer = trim_root_slash(&self.config.issuer);
        let discovery_url = format!("{issuer}/.well-known/openid-configuration");
        let document = get_bytes(http, &discovery_url).await?;
        let extra: ExtraMetadata = serde_json::from_slice(&document)
            .map_err(|error| format!("discovery document is invalid: {error}"))?;
        if trim_slash(&extra.issuer) != trim_slash(&issuer) {
            return Err(format!(
                "discovery names issuer {} instead of {issuer}",
                extra.issuer
            ));
        }
        let metadata: CoreProviderMetadata = serde_json::from_slice(&document)
            .map_err(|error| format!("discovery document is invalid: {error}"))?;
        let keys = get_bytes(http, extra.jwks_uri.as_str()).await?;
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
            jwks,
            token_endpoint: extra.token_endpoint,
            userinfo_endpoint: extra.userinfo_endpoint,
            end_session_endpoint: extra.end_session_endpoint,
            introspection_endpoint: self
                .config
                .introspection_endpoint
                .clone()
                .or(extra.introspection_endpoint),
        })
    }
}

async fn get_bytes(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
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
