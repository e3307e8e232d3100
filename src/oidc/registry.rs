//! All configured providers, by id.

use crate::oidc::client_auth::KeyFileError;
use std::sync::Arc;

use openidconnect::RedirectUrl;

use super::Provider;
use crate::config::ProviderConfig;
use crate::error::{ApiError, printable};

/// The configured providers in configuration order.
#[derive(Clone)]
pub struct ProviderRegistry {
    providers: Arc<Vec<Arc<Provider>>>,
}

/// Why the providers cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The callback URL (public URL plus `/callback`) is not a URL.
    #[error("invalid callback URL: {0}")]
    CallbackUrl(#[source] openidconnect::url::ParseError),
    /// A provider's client key file cannot be used.
    #[error("providers.{provider}: {source}")]
    ClientKey {
        /// The provider's id.
        provider: String,
        /// The key file problem.
        #[source]
        source: KeyFileError,
    },
}

impl ProviderRegistry {
    /// Providers from configuration, all sharing the callback `redirect_uri`.
    pub fn new(configs: &[ProviderConfig], redirect_uri: &str) -> Result<Self, RegistryError> {
        let redirect_uri =
            RedirectUrl::new(redirect_uri.to_owned()).map_err(RegistryError::CallbackUrl)?;
        let providers = configs
            .iter()
            .map(|config| {
                Provider::new(config.clone(), redirect_uri.clone())
                    .map(Arc::new)
                    .map_err(|source| RegistryError::ClientKey {
                        provider: config.id.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            providers: Arc::new(providers),
        })
    }

    /// All providers.
    pub fn all(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    /// The provider with `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|provider| provider.id() == id)
    }

    /// The provider a login should use: the named one, or the only one.
    /// `Ok(None)` means several are configured and the user must choose.
    pub fn choose(&self, requested: Option<&str>) -> Result<Option<&Arc<Provider>>, ApiError> {
        match requested {
            Some(id) => self.get(id).map(Some).ok_or_else(|| {
                ApiError::UnknownProvider(format!("Unknown provider '{}'", printable(id)))
            }),
            None => match self.providers.as_slice() {
                [] => Err(ApiError::UnknownProvider(
                    "No identity provider is configured".to_owned(),
                )),
                [only] => Ok(Some(only)),
                _ => Ok(None),
            },
        }
    }

    /// Starts background discovery (and, later, recovery checks) of every provider.
    pub fn start_discovery(&self, http: &reqwest::Client) {
        for provider in self.providers.iter() {
            tokio::spawn(provider.clone().watch(http.clone()));
        }
    }
}
