//! Back-channel logout as a whole (OpenID Connect Back-Channel Logout 1.0 section 2.6):
//! the logout token's checks, the replay guard and the deletion of every matching
//! session by `sid` or `sub`. The `jti` is recorded only after the deletion succeeded, so
//! a store failure in between leaves the provider's retry acceptable (the deletion is
//! idempotent; a burnt `jti` would let the sessions survive).

use std::time::Duration;

use super::ProviderRegistry;
use super::logout_token::{self, CLOCK_SKEW_SECONDS};
use crate::clock::unix_now;
use crate::crypto;
use crate::error::ApiError;
use crate::observed_store::ObservedStore;
use crate::session::SessionService;
use crate::store::KeyValueStore;

/// What a back-channel logout needs.
pub struct BackchannelDeps<'a> {
    /// Providers (the token's issuer and keys).
    pub providers: &'a ProviderRegistry,
    /// The upstream HTTP client (keys).
    pub http: &'a reqwest::Client,
    /// Sessions and their `(provider, sid|sub)` indexes.
    pub sessions: &'a SessionService,
    /// Where the replay guard lives (shared by all instances).
    pub store: &'a ObservedStore,
    /// `session.key_prefix`.
    pub key_prefix: &'a str,
    /// `backchannel.max_age`: how old a token's `iat` may be.
    pub max_age: Duration,
}

/// A back-channel logout that was carried out.
#[derive(Debug)]
pub struct Ended {
    /// The provider that asked.
    pub provider: String,
    /// How many sessions ended.
    pub sessions: u64,
}

/// Checks `token` and ends the sessions it names.
pub async fn backchannel_logout(
    deps: &BackchannelDeps<'_>,
    token: &str,
) -> Result<Ended, ApiError> {
    let max_age = i64::try_from(deps.max_age.as_secs()).unwrap_or(i64::MAX / 4);
    let logout = logout_token::validate(deps.providers, deps.http, token, max_age, unix_now())
        .await
        .map_err(|reason| {
            // Named from the unverified `iss` (a token whose signature failed is not
            // believed, but the operator learns which provider it claims to come from).
            let provider = logout_token::claimed_provider(deps.providers, token)
                .map_or("-", |provider| provider.id());
            tracing::warn!(check = %reason, provider, "logout token refused");
            invalid(&reason.to_string())
        })?;
    let provider = logout.provider.id().to_owned();
    // Section 2.6 step 7: a jti seen before (on any instance) is a replay. The guard lives
    // as long as a token can stay acceptable (max_age plus skew).
    let guard = format!(
        "{}jti:{}",
        deps.key_prefix,
        crypto::derive_name(
            "logout-jti",
            format!("{provider}\0{}", logout.jti).as_bytes()
        )
    );
    let guard_ttl = Duration::from_secs(
        max_age
            .saturating_add(2 * CLOCK_SKEW_SECONDS)
            .max(1)
            .unsigned_abs(),
    );
    let sessions = once_per_jti(deps.store, &guard, guard_ttl, &provider, async || {
        match (&logout.sid, &logout.sub) {
            (Some(sid), _) => deps.sessions.delete_by_sid(&provider, sid).await,
            (None, Some(sub)) => deps.sessions.delete_by_subject(&provider, sub).await,
            (None, None) => Ok(0),
        }
    })
    .await?;
    Ok(Ended { provider, sessions })
}

/// Runs `end` unless `guard` is already recorded, and records `guard` only once `end`
/// succeeded.
async fn once_per_jti(
    store: &impl KeyValueStore,
    guard: &str,
    ttl: Duration,
    provider: &str,
    end: impl AsyncFnOnce() -> Result<u64, ApiError>,
) -> Result<u64, ApiError> {
    if store.get(guard).await?.is_some() {
        return Err(replay(provider));
    }
    let ended = end().await?;
    if !store.set_if_absent(guard, b"1", ttl).await? {
        // The same token was handled concurrently; the sessions are gone either way.
        return Err(replay(provider));
    }
    Ok(ended)
}

fn replay(provider: &str) -> ApiError {
    tracing::warn!(check = "jti", provider, "logout token refused as a replay");
    invalid("the jti was already used (replay)")
}

fn invalid(reason: &str) -> ApiError {
    ApiError::InvalidLogoutToken(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_failed_deletion_does_not_burn_the_jti() {
        let store = MemoryStore::new();
        let failed = once_per_jti(&store, "jti:a", TTL, "op", async || {
            Err(ApiError::SessionStoreUnavailable)
        })
        .await;
        assert!(matches!(failed, Err(ApiError::SessionStoreUnavailable)));
        assert_eq!(store.get("jti:a").await.ok().flatten(), None);

        let retried = once_per_jti(&store, "jti:a", TTL, "op", async || Ok(2)).await;
        assert!(matches!(retried, Ok(2)));
    }

    #[tokio::test]
    async fn a_jti_is_refused_after_a_successful_logout() {
        let store = MemoryStore::new();
        let first = once_per_jti(&store, "jti:b", TTL, "op", async || Ok(1)).await;
        assert!(matches!(first, Ok(1)));
        let mut ran = false;
        let second = once_per_jti(&store, "jti:b", TTL, "op", async || {
            ran = true;
            Ok(1)
        })
        .await;
        assert!(matches!(second, Err(ApiError::InvalidLogoutToken(_))));
        assert!(!ran, "a replay must not delete again");
    }
}
