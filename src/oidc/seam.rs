//! The provider seam (DESIGN "Provider kinds"): a login starts and finishes here whatever
//! the provider's kind — an OpenID provider (discovery, [`super::flow`]) or an ArcGIS
//! portal ([`super::portal`]) — so `routes/` never branches on it.

use super::flow::{self, LoginHints, LoginOutcome, LoginStart, PendingLogin};
use super::provider::Provider;
use crate::error::ApiError;
use crate::redirect::ReturnUrl;

/// The authorization request of a new login at `provider`, whatever its kind (the seam
/// `routes/login` calls): `PROVIDER_UNAVAILABLE` when the provider does not answer.
pub async fn start_login(
    provider: &Provider,
    http: &reqwest::Client,
    return_url: ReturnUrl,
    hints: &LoginHints<'_>,
) -> Result<LoginStart, ApiError> {
    if let Some(portal) = provider.portal() {
        if !portal.answers_for_login(http).await {
            return Err(ApiError::ProviderUnavailable(provider.id().to_owned()));
        }
        return super::portal::begin_login(portal, return_url);
    }
    let discovered = provider.discovered_for_login(http).await?;
    let start = flow::begin_login(provider, &discovered, return_url, hints)?;
    // RFC 9126: pushed when `par` (or the provider) asks for it; else returned as is.
    flow::push_authorization_request(provider, &discovered, http, start).await
}

/// Redeems `code` and gathers the user at `provider`, whatever its kind.
pub async fn finish_login(
    provider: &Provider,
    http: &reqwest::Client,
    pending: &PendingLogin,
    code: &str,
) -> Result<LoginOutcome, ApiError> {
    match provider.portal() {
        Some(portal) => super::portal::finish_login(portal, http, pending, code).await,
        None => flow::finish_login(provider, http, pending, code).await,
    }
}
