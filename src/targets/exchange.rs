//! Strategy `exchange`: RFC 8693 token exchange of the caller's access token at the
//! caller's own provider.

use super::Target;
use super::access_token::user_access_token;
use super::cache::CachedToken;
use super::deps::TokenDeps;
use super::upstream::{push_optional, upstream_with};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::oidc::dpop::{DpopKey, Prover};
use crate::oidc::token_endpoint::TokenClient;

/// RFC 8693 grant type and token type.
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The configured exchange parameters.
pub(super) struct Request<'a> {
    pub audience: &'a Option<String>,
    pub resource: &'a Option<String>,
    pub scope: &'a Option<String>,
}

/// A token for `target` in exchange for the caller's access token.
pub(super) async fn fetch(
    deps: &TokenDeps<'_>,
    caller: &Caller,
    target: &Target,
    request: &Request<'_>,
) -> Result<CachedToken, ApiError> {
    let (subject_token, _) = user_access_token(deps, caller).await?;
    let provider = deps.providers.get(caller.provider()).ok_or_else(|| {
        ApiError::TokenUnavailable("The session's provider is not configured".to_owned())
    })?;
    let discovered = provider.discovered(deps.http).await?;
    let token_url = discovered.token_endpoint.clone().ok_or_else(|| {
        ApiError::TokenUnavailable("The provider has no token endpoint".to_owned())
    })?;
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT.to_owned()),
        ("subject_token", subject_token),
        ("subject_token_type", ACCESS_TOKEN_TYPE.to_owned()),
    ];
    push_optional(&mut form, "audience", request.audience);
    push_optional(&mut form, "resource", request.resource);
    push_optional(&mut form, "scope", request.scope);
    let client = TokenClient {
        client_id: &provider.config.client_id,
        auth: &provider.config.client_auth,
        key: provider.client_key.as_ref(),
    };
    // RFC 9449 section 5: a DPoP session exchanges with a proof of its own key.
    let dpop_key = match (provider.config.dpop, caller) {
        (false, _) => None,
        (true, Caller::Session(session)) => {
            let stored = session
                .record
                .tokens
                .get()
                .dpop_key
                .clone()
                .ok_or_else(|| {
                    ApiError::TokenUnavailable("The session has no DPoP key".to_owned())
                })?;
            Some(DpopKey::from_stored(&stored).map_err(|_| {
                ApiError::TokenUnavailable("The session's DPoP key is unreadable".to_owned())
            })?)
        }
        (true, Caller::Bearer(_)) => {
            return Err(ApiError::TokenUnavailable(
                "A bearer caller holds no DPoP key to exchange with".to_owned(),
            ));
        }
    };
    let prover = dpop_key.as_ref().map(|key| Prover {
        key,
        nonce: &provider.dpop_nonce,
        access_token: None,
    });
    upstream_with(deps, target, &token_url, &client, form, prover).await
}
