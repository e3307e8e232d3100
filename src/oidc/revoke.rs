//! RFC 7009 token revocation when a session ends on its own request (SPEC 11): the
//! session's refresh token (else its access token) goes to the provider's
//! `revocation_endpoint` with the provider's client authentication (every method of
//! [`super::token_endpoint::authenticated_post`], `private_key_jwt` included). Bounded
//! by [`REVOCATION_TIMEOUT`]; a failure is one WARN line and never fails the logout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::token_endpoint::{TokenClient, authenticated_post};
use super::{Provider, ProviderRegistry};
use crate::metrics::Metrics;
use crate::session::LoadedSession;

/// The longest a logout waits for the provider's revocation endpoint.
pub const REVOCATION_TIMEOUT: Duration = Duration::from_secs(2);

/// What revoking a session's token needs.
pub struct RevokeDeps<'a> {
    /// Providers, for their revocation endpoints and client authentication.
    pub providers: &'a ProviderRegistry,
    /// The upstream HTTP client.
    pub http: &'a reqwest::Client,
    /// Upstream latency.
    pub metrics: &'a Metrics,
}

/// Revokes `session`'s refresh token (else its access token) at its provider, when the
/// provider announces a `revocation_endpoint`; waits at most [`REVOCATION_TIMEOUT`].
/// Never fails: a refusal, an error or the timeout is logged at WARN (without the token).
pub async fn revoke_session_tokens(deps: &RevokeDeps<'_>, session: &LoadedSession) {
    if let Some(provider) = deps.providers.get(&session.record.provider)
        && provider.portal().is_some()
    {
        revoke_at_portal(provider, deps.http, session);
        return;
    }
    let provider = session.record.provider.as_str();
    let started = Instant::now();
    let outcome = tokio::time::timeout(REVOCATION_TIMEOUT, revoke(deps, session)).await;
    match outcome {
        Ok(Ok(Some(kind))) => {
            deps.metrics
                .upstream_latency
                .with_label_values(&[provider, "revocation"])
                .observe(started.elapsed().as_secs_f64());
            tracing::info!(provider, token = kind, "token revoked at the provider");
        }
        Ok(Ok(None)) => {}
        Ok(Err(cause)) => {
            tracing::warn!(provider, %cause, "token revocation failed; the session is ended here all the same");
        }
        Err(_) => {
            tracing::warn!(
                provider,
                cause = "timed out after 2 s",
                "token revocation failed; the session is ended here all the same"
            );
        }
    }
}

/// The kind of token revoked, `None` when there is nothing to revoke or nowhere to.
async fn revoke(
    deps: &RevokeDeps<'_>,
    session: &LoadedSession,
) -> Result<Option<&'static str>, String> {
    let Some(provider) = deps.providers.get(&session.record.provider) else {
        return Ok(None);
    };
    let tokens = session.record.tokens.get();
    let (token, hint) = match (&tokens.refresh_token, &tokens.access_token) {
        (Some(refresh), _) => (refresh.clone(), "refresh_token"),
        (None, Some(access)) => (access.clone(), "access_token"),
        (None, None) => return Ok(None),
    };
    let discovered = provider
        .discovered(deps.http)
        .await
        .map_err(|_| "the provider's discovery document is unavailable".to_owned())?;
    let Some(endpoint) = discovered.revocation_endpoint.as_ref() else {
        return Ok(None);
    };
    let client = TokenClient {
        client_id: &provider.config.client_id,
        auth: &provider.config.client_auth,
        key: provider.client_key.as_ref(),
    };
    // RFC 7009 section 2.1: `token` and the optional `token_type_hint`.
    let form = vec![("token", token), ("token_type_hint", hint.to_owned())];
    let request = authenticated_post(deps.http, endpoint, &client, form)
        .map_err(|error| error.to_string())?
        .timeout(REVOCATION_TIMEOUT);
    let response = crate::http_client::send(request, "revocation")
        .await
        .map_err(|_| "the revocation endpoint could not be reached".to_owned())?;
    let status = response.status();
    // RFC 7009 section 2.2: 200 whether or not the token was still valid.
    if status.is_success() {
        Ok(Some(hint))
    } else {
        Err(format!(
            "the revocation endpoint answered HTTP {}",
            status.as_u16()
        ))
    }
}

/// SPEC 10: an ArcGIS session's refresh token is revoked at the portal's
/// `oauth2/revokeToken` in the background (bounded there by
/// [`crate::arcgis::REVOKE_DEADLINE`]), so the logout never waits for the portal.
fn revoke_at_portal(provider: &Arc<Provider>, http: &reqwest::Client, session: &LoadedSession) {
    let Some(refresh_token) = session.record.tokens.get().refresh_token.clone() else {
        return;
    };
    let provider = provider.clone();
    let http = http.clone();
    tokio::spawn(async move {
        if let Some(portal) = provider.portal() {
            portal.revoke(&http, &refresh_token).await;
        }
    });
}
