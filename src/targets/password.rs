//! Strategy `password`: a shared service token for a technical account by the resource
//! owner password grant (RFC 6749 section 4.3), with HTTP Basic client authentication.

use url::Url;

use super::Target;
use super::cache::CachedToken;
use super::deps::TokenDeps;
use super::upstream::{push_optional, upstream};
use crate::config::{ClientAuth, Secret};
use crate::error::ApiError;
use crate::oidc::token_endpoint::TokenClient;

/// The configured client, account and parameters.
pub(super) struct Request<'a> {
    pub token_url: &'a Url,
    pub client_id: &'a str,
    pub client_secret: &'a Secret,
    pub username: &'a str,
    pub password: &'a Secret,
    pub scope: &'a Option<String>,
}

/// A new service token for `target`.
pub(super) async fn fetch(
    deps: &TokenDeps<'_>,
    target: &Target,
    request: &Request<'_>,
) -> Result<CachedToken, ApiError> {
    let auth = ClientAuth::ClientSecretBasic {
        secret: request.client_secret.clone(),
    };
    let client = TokenClient {
        client_id: request.client_id,
        auth: &auth,
        key: None,
    };
    let mut form = vec![
        ("grant_type", "password".to_owned()),
        ("username", request.username.to_owned()),
        ("password", request.password.expose().to_owned()),
    ];
    push_optional(&mut form, "scope", request.scope);
    upstream(deps, target, request.token_url, &client, form).await
}
