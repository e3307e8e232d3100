//! Strategy `arcgis_server` (SPEC 10): a token for a federated ArcGIS Server site from the
//! caller's portal's `generateToken`
//! (<https://developers.arcgis.com/rest/users-groups-and-items/generate-token/>): `serverUrl`
//! is the target's `server_url` or its `url`, `token` the caller's portal token (a
//! session's, refreshed first when needed, or an ESRI bearer token's). The issue dispatch
//! caches the answer per caller and target until shortly before its `expires`.

use super::Target;
use super::access_token::user_access_token;
use super::cache::CachedToken;
use super::deps::TokenDeps;
use crate::caller::Caller;
use crate::clock::unix_now;
use crate::error::ApiError;

/// A server token for `target`, for the holder of the caller's portal token.
pub(super) async fn fetch(
    deps: &TokenDeps<'_>,
    caller: &Caller,
    target: &Target,
    server_url: Option<&url::Url>,
) -> Result<CachedToken, ApiError> {
    let provider = deps.providers.get(caller.provider()).ok_or_else(|| {
        ApiError::TokenUnavailable("The caller's provider is not configured".to_owned())
    })?;
    let Some(portal) = provider.portal() else {
        tracing::warn!(check = "arcgis_server needs a portal caller", provider = %provider.id(), target = %target.url(), "target token refused");
        return Err(ApiError::TokenUnavailable(
            "This target needs a login through an ArcGIS portal".to_owned(),
        ));
    };
    let (portal_token, _) = user_access_token(deps, caller).await?;
    let server_url = server_url.map_or_else(|| target.url().to_owned(), |url| url.to_string());
    let started = std::time::Instant::now();
    let answer = portal
        .server_token(deps.http, &server_url, &portal_token)
        .await;
    deps.metrics
        .upstream_latency
        .with_label_values(&[provider.id(), "generateToken"])
        .observe(started.elapsed().as_secs_f64());
    let answer = answer.map_err(|error| {
        tracing::warn!(check = "generateToken", provider = %provider.id(), target = %target.url(), reason = %error, "target token refused");
        ApiError::TokenUnavailable("The portal did not issue a server token".to_owned())
    })?;
    let now = unix_now();
    let expires_at = answer.expires.div_euclid(1000);
    if expires_at <= now {
        tracing::warn!(check = "generateToken expires", provider = %provider.id(), target = %target.url(), "target token refused");
        return Err(ApiError::TokenUnavailable(
            "The portal issued an expired server token".to_owned(),
        ));
    }
    Ok(CachedToken {
        value: answer.token,
        issued_at: now,
        expires_at,
        refresh_token: None,
    })
}
