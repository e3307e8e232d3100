//! All configured providers, by id.

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

impl ProviderRegistry {
    /// Providers from configuration, all sharing the callback `redirect_uri`.
    pub fn new(configs: &[ProviderConfig], redirect_uri: &str) -> Result<Self, String> {
        let redirect_uri = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|error| format!("invalid callback URL: {error}"))?;
        let providers = configs
            .iter()
            .map(|config| {
                Provider::new(config.clone(), redirect_uri.clone())
                    .map(Arc::new)
                    .map_err(|error| format!("providers.{}: {error}", config.id))
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
