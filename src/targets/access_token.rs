//! Strategy `access_token`: the caller's own access token — the session's (refreshed
//! first when needed) or the bearer token it came with. Never cached here: the session
//! holds it already.

use super::deps::{IssuedToken, TokenDeps};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::oidc::refresh;

/// The caller's own access token as a target token.
pub(super) async fn issue(deps: &TokenDeps<'_>, caller: &Caller) -> Result<IssuedToken, ApiError> {
    let (value, expires_at) = user_access_token(deps, caller).await?;
    Ok(IssuedToken { value, expires_at })
}

/// The caller's own access token and its expiry.
pub(super) async fn user_access_token(
    deps: &TokenDeps<'_>,
    caller: &Caller,
) -> Result<(String, i64), ApiError> {
    match caller {
        Caller::Session(session) => refresh::access_token(&deps.refresh, session).await,
        Caller::Bearer(identity) => Ok((identity.token().to_owned(), identity.expires_at)),
    }
}
