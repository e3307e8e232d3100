//! Strategy `jwt`: a short-lived JWT we sign ourselves with the caller's identity, for
//! targets that trust our key (published at `/.well-known/jwks.json`).

use std::time::Duration;

use serde::Serialize;

use super::Target;
use super::cache::CachedToken;
use super::deps::TokenDeps;
use crate::caller::Caller;
use crate::clock::unix_now;
use crate::crypto;
use crate::error::ApiError;

/// The claims of a token we sign.
#[derive(Serialize)]
struct OurClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    name: &'a str,
    roles: &'a [String],
    groups: &'a [String],
    provider: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// A new token for `caller` at `target`, valid for `lifetime`, for `audience` (the
/// target URL when not configured).
pub(super) fn sign(
    deps: &TokenDeps<'_>,
    caller: &Caller,
    target: &Target,
    lifetime: Duration,
    audience: Option<&str>,
) -> Result<CachedToken, ApiError> {
    let now = unix_now();
    let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(300).max(1);
    let profile = caller.profile();
    let claims = OurClaims {
        iss: deps.issuer,
        aud: audience.unwrap_or(target.url()),
        sub: caller.subject(),
        name: &profile.name,
        roles: &profile.roles,
        groups: &profile.groups,
        provider: caller.provider(),
        iat: now,
        exp: now.saturating_add(lifetime),
        jti: crypto::random_token::<16>()?,
    };
    Ok(CachedToken {
        value: deps.signer.sign(&claims)?,
        issued_at: now,
        expires_at: now.saturating_add(lifetime),
        refresh_token: None,
    })
}
