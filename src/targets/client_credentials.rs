//! Strategy `client_credentials`: a shared service token by the client credentials grant
//! (RFC 6749 section 4.4), renewed with the refresh token that came with the last one
//! when the token endpoint issues one.

use url::Url;

use super::Target;
use super::cache::CachedToken;
use super::deps::TokenDeps;
use super::upstream::{push_optional, upstream};
use crate::config::ClientAuth;
use crate::error::ApiError;
use crate::oidc::token_endpoint::TokenClient;

/// The configured client and parameters.
pub(super) struct Request<'a> {
    pub token_url: &'a Url,
    pub client_id: &'a str,
    pub client_auth: &'a ClientAuth,
    pub scope: &'a Option<String>,
    pub audience: &'a Option<String>,
}

/// A new service token for `target`; `stale` is the expired cached one, if any.
pub(super) async fn fetch(
    deps: &TokenDeps<'_>,
    target: &Target,
    request: &Request<'_>,
    stale: Option<CachedToken>,
) -> Result<CachedToken, ApiError> {
    let client = TokenClient {
        client_id: request.client_id,
        auth: request.client_auth,
        key: target.client_key.as_ref(),
    };
    // Some token endpoints answer client credentials with a refresh token too; using it
    // spares them a full client authentication.
    if let Some(refresh_token) = stale.and_then(|token| token.refresh_token) {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token),
        ];
        push_optional(&mut form, "scope", request.scope);
        match upstream(deps, target, request.token_url, &client, form).await {
            Ok(token) => return Ok(token),
            Err(error) => {
                tracing::info!(%error, target = target.url(), "service token refresh failed; using client credentials")
            }
        }
    }
    let mut form = vec![("grant_type", "client_credentials".to_owned())];
    push_optional(&mut form, "scope", request.scope);
    push_optional(&mut form, "audience", request.audience);
    upstream(deps, target, request.token_url, &client, form).await
}
