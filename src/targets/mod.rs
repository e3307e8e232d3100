//! Token targets (SPEC 6): which downstream URLs a caller may get tokens for, and the
//! tokens themselves — from the session, by RFC 8693 exchange, by client credentials, by a
//! technical account's password, or signed by us — cached and fetched once at a time.

mod access_token;
mod arcgis_server;
mod cache;
mod client_credentials;
mod deps;
mod exchange;
mod issue;
mod jwt;
mod matching;
mod password;
pub mod signing;
mod upstream;

use std::sync::Arc;

use url::Url;

pub use cache::{CachedToken, Prefetched, TokenCache};
pub use issue::{IssuedToken, TokenDeps, issue_token, issue_token_prefetched, sender_constrained};
pub use matching::parse_requested;

use actix_web::HttpRequest;

use crate::caller::{Caller, CallerDeps};
use crate::config::{Strategy, TargetConfig};
use crate::crypto;
use crate::error::ApiError;
use crate::oidc::client_auth::ClientKey;
use matching::TargetPattern;

/// A configured target.
pub struct Target {
    /// Its configuration.
    pub config: TargetConfig,
    pattern: TargetPattern,
    /// Seals this target's shared service token: derived from its client credentials, so
    /// a copy of the store alone does not open it.
    service_secret: Vec<u8>,
    /// The client key of a `private_key_jwt` client-credentials target.
    client_key: Option<ClientKey>,
}

/// Why a target's configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A client-credentials key file cannot be read.
    #[error("targets: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// A `private_key_jwt` key file holds no usable key.
    #[error("targets: {0}")]
    ClientKey(#[from] crate::oidc::client_auth::KeyFileError),
}

impl Target {
    fn new(config: TargetConfig) -> Result<Self, TargetError> {
        let service_secret = match &config.strategy {
            Strategy::ClientCredentials {
                client_id,
                client_auth,
                ..
            } => {
                let mut material = client_id.as_bytes().to_vec();
                match client_auth {
                    crate::config::ClientAuth::ClientSecretBasic { secret }
                    | crate::config::ClientAuth::ClientSecretPost { secret } => {
                        material.extend_from_slice(secret.expose().as_bytes());
                    }
                    crate::config::ClientAuth::PrivateKeyJwt { key_file } => {
                        material.extend(std::fs::read(key_file).map_err(|source| {
                            TargetError::Read {
                                path: key_file.display().to_string(),
                                source,
                            }
                        })?);
                    }
                    crate::config::ClientAuth::None => {}
                }
                material
            }
            Strategy::Password {
                client_secret,
                password,
                username,
                ..
            } => [client_secret.expose(), username, password.expose()]
                .join("\0")
                .into_bytes(),
            _ => Vec::new(),
        };
        let client_key = match &config.strategy {
            Strategy::ClientCredentials {
                client_auth: crate::config::ClientAuth::PrivateKeyJwt { key_file },
                ..
            } => Some(ClientKey::from_pem_file(key_file)?),
            _ => None,
        };
        Ok(Self {
            client_key,
            pattern: TargetPattern::new(&config.url),
            config,
            service_secret: crypto::derive_key("service-token", &service_secret).to_vec(),
        })
    }

    /// The configured URL as text.
    pub fn url(&self) -> &str {
        self.config.url.as_str()
    }

    /// Whether `caller` may use this target (its provider and roles).
    pub fn permits(&self, caller: &Caller) -> bool {
        let provider_ok = self.config.providers.is_empty()
            || self
                .config
                .providers
                .iter()
                .any(|id| id == caller.provider());
        // The profile (parsed on first use) is read only when roles matter.
        provider_ok
            && (self.config.roles.is_empty() || {
                let roles = &caller.profile().roles;
                self.config.roles.iter().any(|role| roles.contains(role))
            })
    }
}

/// All targets, in configuration order.
#[derive(Clone)]
pub struct TargetTable {
    targets: Arc<Vec<Target>>,
}

impl TargetTable {
    /// From configuration.
    pub fn new(configs: &[TargetConfig]) -> Result<Self, TargetError> {
        let targets = configs
            .iter()
            .cloned()
            .map(Target::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            targets: Arc::new(targets),
        })
    }

    /// The targets `caller` may use.
    pub fn permitted<'a>(&'a self, caller: &'a Caller) -> impl Iterator<Item = &'a Target> + 'a {
        self.targets
            .iter()
            .filter(move |target| target.permits(caller))
    }

    /// The most specific target covering `requested` that `caller` may use.
    pub fn find(&self, requested: &Url, caller: &Caller) -> Result<&Target, ApiError> {
        self.covering(requested)
            .filter(|target| target.permits(caller))
            .ok_or(ApiError::TargetNotAllowed)
    }

    /// The most specific target covering `requested`, whoever asks.
    fn covering(&self, requested: &Url) -> Option<&Target> {
        self.targets
            .iter()
            .filter(|target| target.pattern.matches(requested))
            .max_by_key(|target| target.pattern.specificity())
    }
}

/// Identifies the caller of a token request for `requested`: a cookie caller's session
/// and the cached token it would get are read in one store round trip (`MGET`).
pub async fn identify_token_caller(
    caller_deps: &CallerDeps<'_>,
    table: &TargetTable,
    cache: &TokenCache,
    request: &HttpRequest,
    requested: Option<&Url>,
) -> Result<(Option<Caller>, Option<Prefetched>), ApiError> {
    let target = requested.and_then(|requested| table.covering(requested));
    let (caller, read) = Caller::identify_with(caller_deps, request, |ticket| {
        let target = target?;
        match target.config.strategy {
            Strategy::AccessToken => None,
            Strategy::Exchange { .. } | Strategy::Jwt { .. } | Strategy::ArcgisServer { .. } => {
                Some(issue::session_slot(cache, ticket, target))
            }
            Strategy::ClientCredentials { .. } | Strategy::Password { .. } => {
                Some(issue::service_slot(cache, target))
            }
        }
    })
    .await?;
    Ok((
        caller,
        read.zip(target).map(|((slot, value), target)| Prefetched {
            target: target.url().to_owned(),
            slot,
            value,
        }),
    ))
}
