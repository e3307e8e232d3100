//! What every strategy file shares with the dispatch (`issue.rs`): the parts a
//! token issue needs ([`TokenDeps`]) and the token it hands out ([`IssuedToken`]), kept
//! apart so the strategies and the dispatch do not import each other.

use super::cache::{CachedToken, TokenCache};
use super::signing::Signer;
use crate::metrics::Metrics;
use crate::oidc::ProviderRegistry;
use crate::oidc::refresh::RefreshDeps;
use crate::single_flight::SingleFlight;

/// What issuing a token needs: the cache, the lock, upstream access and our own key.
pub struct TokenDeps<'a> {
    /// Cached target tokens.
    pub token_cache: &'a TokenCache,
    /// Once-at-a-time upstream calls.
    pub flights: &'a SingleFlight,
    /// The upstream HTTP client.
    pub http: &'a reqwest::Client,
    /// Providers (token exchange happens at the caller's provider).
    pub providers: &'a ProviderRegistry,
    /// Our key for `jwt` targets.
    pub signer: &'a Signer,
    /// Our issuer name for `jwt` targets (the public URL without a trailing slash).
    pub issuer: &'a str,
    /// Upstream latency metrics.
    pub metrics: &'a Metrics,
    /// Refreshing the session's own access token.
    pub refresh: RefreshDeps<'a>,
}

/// A token handed to the caller.
pub struct IssuedToken {
    /// The token.
    pub value: String,
    /// Unix seconds of expiry.
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IssuedToken")
            .field("value", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl From<CachedToken> for IssuedToken {
    fn from(token: CachedToken) -> Self {
        Self {
            value: token.value,
            expires_at: token.expires_at,
        }
    }
}
