//! Issuing a target token (SPEC 6): the one dispatch over the five strategies, with the
//! cache and single flight wrapped around them once. User tokens are cached per (session
//! or bearer token, target), service tokens per target.

use std::time::Duration;

use super::Target;
use super::cache::{CacheSlot, CachedToken, Prefetched, SlotOwner, TokenCache};
pub use super::deps::{IssuedToken, TokenDeps};
use super::{access_token, arcgis_server, client_credentials, exchange, jwt, password};
use crate::caller::Caller;
use crate::clock::unix_now;
use crate::config::Strategy;
use crate::error::ApiError;
use crate::session::SessionTicket;

/// How long a service token's refresh token is kept beyond the access token.
const REFRESH_TOKEN_KEEP: Duration = Duration::from_secs(3600);

/// The token `caller` gets for `target`, for the API proxy: a token bound to the
/// session's DPoP key is issued here, and only the proxy's `DPOP` transport sends it.
pub async fn issue_token(
    deps: &TokenDeps<'_>,
    caller: &Caller,
    target: &Target,
) -> Result<IssuedToken, ApiError> {
    issue(deps, caller, target, None).await
}

/// SPEC 12: whether `target`'s token for `caller` is the session's own token, or one
/// exchanged with its proof, and so bound to the session's DPoP key.
pub fn sender_constrained(deps: &TokenDeps<'_>, caller: &Caller, target: &Target) -> bool {
    matches!(
        target.config.strategy,
        Strategy::AccessToken | Strategy::Exchange { .. }
    ) && deps
        .providers
        .get(caller.provider())
        .is_some_and(|provider| provider.config.dpop)
}

/// [`issue_token`], with the cache entry already read when `prefetched` is for the slot
/// this call uses (see [`super::identify_token_caller`]).
pub async fn issue_token_prefetched(
    deps: &TokenDeps<'_>,
    caller: &Caller,
    target: &Target,
    prefetched: Option<Prefetched>,
) -> Result<IssuedToken, ApiError> {
    // SPEC 12: the session's DPoP key never leaves the service, so neither does a token
    // bound to it.
    if sender_constrained(deps, caller, target) {
        tracing::warn!(
            check = "sender-constrained",
            target = target.url(),
            provider = caller.provider(),
            "token refused"
        );
        return Err(ApiError::SenderConstrained);
    }
    let span = crate::spans::target_token(target.url());
    tracing::Instrument::instrument(issue(deps, caller, target, prefetched), span).await
}

/// [`issue_token_prefetched`] by the target's strategy.
async fn issue(
    deps: &TokenDeps<'_>,
    caller: &Caller,
    target: &Target,
    prefetched: Option<Prefetched>,
) -> Result<IssuedToken, ApiError> {
    match &target.config.strategy {
        Strategy::AccessToken => access_token::issue(deps, caller).await,
        Strategy::Exchange {
            audience,
            resource,
            scope,
        } => {
            let request = exchange::Request {
                audience,
                resource,
                scope,
            };
            let (slot, read_ahead) = Prefetched::slot_for(prefetched, target.url(), || {
                user_slot(deps.token_cache, caller, target)
            });
            cached_or_fetched(deps, &slot, read_ahead, async || {
                exchange::fetch(deps, caller, target, &request).await
            })
            .await
        }
        Strategy::ArcgisServer { server_url } => {
            let (slot, read_ahead) = Prefetched::slot_for(prefetched, target.url(), || {
                user_slot(deps.token_cache, caller, target)
            });
            cached_or_fetched(deps, &slot, read_ahead, async || {
                arcgis_server::fetch(deps, caller, target, server_url.as_ref()).await
            })
            .await
        }
        Strategy::Jwt { lifetime, audience } => {
            let (slot, read_ahead) = Prefetched::slot_for(prefetched, target.url(), || {
                user_slot(deps.token_cache, caller, target)
            });
            cached_or_fetched(deps, &slot, read_ahead, async || {
                jwt::sign(deps, caller, target, *lifetime, audience.as_deref())
            })
            .await
        }
        Strategy::ClientCredentials {
            token_url,
            client_id,
            client_auth,
            scope,
            audience,
        } => {
            let request = client_credentials::Request {
                token_url,
                client_id,
                client_auth,
                scope,
                audience,
            };
            service_token(deps, target, prefetched, async |stale| {
                client_credentials::fetch(deps, target, &request, stale).await
            })
            .await
        }
        Strategy::Password {
            token_url,
            client_id,
            client_secret,
            username,
            password,
            scope,
        } => {
            let request = password::Request {
                token_url,
                client_id,
                client_secret,
                username,
                password,
                scope,
            };
            service_token(deps, target, prefetched, async |_| {
                password::fetch(deps, target, &request).await
            })
            .await
        }
    }
}

/// A service token (one per target, shared by all callers), renewed through `fetch`,
/// which gets the stale cached token (for its refresh token) when there is one.
async fn service_token(
    deps: &TokenDeps<'_>,
    target: &Target,
    prefetched: Option<Prefetched>,
    fetch: impl AsyncFnOnce(Option<CachedToken>) -> Result<CachedToken, ApiError>,
) -> Result<IssuedToken, ApiError> {
    let (slot, read_ahead) = Prefetched::slot_for(prefetched, target.url(), || {
        service_slot(deps.token_cache, target)
    });
    // One read serves both the common case (fresh) and the refresh token of a stale one.
    let cached = deps.token_cache.read_or_use(&slot, read_ahead).await?;
    if let Some(token) = cached.as_ref().filter(|token| token.is_fresh(unix_now())) {
        return Ok(token.clone().into());
    }
    cached_or_fetched(deps, &slot, None, async || fetch(cached).await).await
}

/// A fresh cached token, or one fetched by whichever request wins the lock.
async fn cached_or_fetched(
    deps: &TokenDeps<'_>,
    slot: &CacheSlot,
    read_ahead: Option<Option<Vec<u8>>>,
    fetch: impl AsyncFnOnce() -> Result<CachedToken, ApiError>,
) -> Result<IssuedToken, ApiError> {
    let cache = deps.token_cache;
    if read_ahead.is_some()
        && let Some(token) = cache
            .read_or_use(slot, read_ahead)
            .await?
            .filter(|token| token.is_fresh(unix_now()))
    {
        return Ok(token.into());
    }
    let token = deps
        .flights
        .run(
            &TokenCache::lock_key(slot),
            async || {
                Ok(cache
                    .read(slot)
                    .await?
                    .filter(|token| token.is_fresh(unix_now())))
            },
            async || {
                let token = fetch().await?;
                let lifetime =
                    Duration::from_secs(token.expires_at.saturating_sub(unix_now()).max(1) as u64);
                let keep = if token.refresh_token.is_some() {
                    lifetime.max(REFRESH_TOKEN_KEEP)
                } else {
                    lifetime
                };
                cache.write(slot, &token, keep).await?;
                Ok(token)
            },
        )
        .await?;
    Ok(token.into())
}

/// User tokens are keyed by the session (or bearer token) and sealed with its secret.
fn user_slot(cache: &TokenCache, caller: &Caller, target: &Target) -> CacheSlot {
    match caller {
        Caller::Session(session) => session_slot(cache, &session.ticket, target),
        Caller::Bearer(identity) => cache.slot(
            SlotOwner::Bearer(identity.token()),
            target.url(),
            identity.token().as_bytes(),
        ),
    }
}

/// Where a session's user token for `target` is cached.
pub(super) fn session_slot(
    cache: &TokenCache,
    ticket: &SessionTicket,
    target: &Target,
) -> CacheSlot {
    cache.slot(
        SlotOwner::Session(ticket.secret()),
        target.url(),
        ticket.secret(),
    )
}

/// Where the shared service token of `target` is cached.
pub(super) fn service_slot(cache: &TokenCache, target: &Target) -> CacheSlot {
    cache.slot(SlotOwner::Service, target.url(), &target.service_secret)
}
