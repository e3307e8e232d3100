//! Cached target tokens, sealed at rest: user tokens under a key derived from the session
//! ticket's secret (so only that session's cookie opens them), service tokens under a key
//! derived from the target's own client credentials.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::error::{ApiError, InternalError};
use crate::observed_store::ObservedStore;
use crate::store::KeyValueStore;

/// Renew at most this long before expiry (less for short-lived tokens).
const MAX_RENEW_MARGIN_SECONDS: i64 = 30;

/// A token as cached.
#[derive(Clone, Serialize, Deserialize)]
pub struct CachedToken {
    /// The token.
    pub value: String,
    /// Unix seconds of issue.
    pub issued_at: i64,
    /// Unix seconds of expiry.
    pub expires_at: i64,
    /// A refresh token that came with it (some token endpoints add one to client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CachedToken")
            .field("value", &"***")
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl CachedToken {
    /// Whether it is still good to hand out: not within the renewal margin of expiry
    /// (a fifth of its lifetime, at most 30 s).
    pub fn is_fresh(&self, now: i64) -> bool {
        let lifetime = (self.expires_at - self.issued_at).max(0);
        let margin = (lifetime / 5).clamp(1, MAX_RENEW_MARGIN_SECONDS);
        self.expires_at - now > margin
    }
}

/// Where one cached token lives and how it is sealed.
pub struct CacheSlot {
    /// Store key.
    pub key: String,
    /// Sealing key.
    pub seal: [u8; 32],
}

impl AsRef<str> for CacheSlot {
    fn as_ref(&self) -> &str {
        &self.key
    }
}

/// A cache entry read ahead (in the same store round trip as the session): the slot of
/// the target it was read for (derived once) and its sealed value, `None` when absent.
pub struct Prefetched {
    /// The target's URL.
    pub target: String,
    /// Where it was read from.
    pub slot: CacheSlot,
    /// The sealed value.
    pub value: Option<Vec<u8>>,
}

impl Prefetched {
    /// The slot for `target` (the one read ahead when it was for `target`, else `derive`'s)
    /// and, when read ahead, the sealed value.
    pub fn slot_for(
        prefetched: Option<Self>,
        target: &str,
        derive: impl FnOnce() -> CacheSlot,
    ) -> (CacheSlot, Option<Option<Vec<u8>>>) {
        match prefetched {
            Some(prefetched) if prefetched.target == target => {
                (prefetched.slot, Some(prefetched.value))
            }
            _ => (derive(), None),
        }
    }
}

/// Whose token a cache slot holds.
#[derive(Clone, Copy)]
pub enum SlotOwner<'a> {
    /// A session, by its ticket's secret.
    Session(&'a [u8]),
    /// A bearer caller, by its token.
    Bearer(&'a str),
    /// Nobody: the target's shared service token.
    Service,
}

/// Sealed token cache over the store.
#[derive(Clone)]
pub struct TokenCache {
    store: ObservedStore,
    prefix: String,
}

impl TokenCache {
    /// A cache under `prefix`.
    pub fn new(store: ObservedStore, prefix: &str) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
        }
    }

    /// The slot of a token for `target` owned by `owner` (a session's secret, a bearer
    /// token, or the target itself), sealed with `secret`. Its name is one hash of the
    /// owner's secret material: it says nothing about the owner, nor links two slots.
    pub fn slot(&self, owner: SlotOwner<'_>, target: &str, secret: &[u8]) -> CacheSlot {
        let (kind, material): (&[u8], &[u8]) = match owner {
            SlotOwner::Session(secret) => (b"session", secret),
            SlotOwner::Bearer(token) => (b"bearer", token.as_bytes()),
            SlotOwner::Service => (b"service", b""),
        };
        let name = crypto::derive_name_of("token-cache", &[kind, material, target.as_bytes()]);
        let mut seal_input = secret.to_vec();
        seal_input.extend_from_slice(target.as_bytes());
        CacheSlot {
            key: format!("{}token:{name}", self.prefix),
            seal: crypto::derive_key("token-cache-seal", &seal_input),
        }
    }

    /// The cached token, if any and readable.
    pub async fn read(&self, slot: &CacheSlot) -> Result<Option<CachedToken>, ApiError> {
        let Some(sealed) = self.store.get(&slot.key).await? else {
            return Ok(None);
        };
        Ok(Self::open(slot, sealed))
    }

    /// The cached token from `read_ahead` (the sealed value of `slot`, read with the
    /// session: no store call) when there is one, else from the store.
    pub async fn read_or_use(
        &self,
        slot: &CacheSlot,
        read_ahead: Option<Option<Vec<u8>>>,
    ) -> Result<Option<CachedToken>, ApiError> {
        match read_ahead {
            Some(value) => Ok(value.and_then(|sealed| Self::open(slot, sealed))),
            None => self.read(slot).await,
        }
    }

    fn open(slot: &CacheSlot, sealed: Vec<u8>) -> Option<CachedToken> {
        crypto::open(&slot.seal, slot.key.as_bytes(), sealed)
            .and_then(|plain| serde_json::from_slice(&plain).ok())
    }

    /// Caches `token` until it (or its refresh token, kept up to `keep`) is useless.
    pub async fn write(
        &self,
        slot: &CacheSlot,
        token: &CachedToken,
        keep: Duration,
    ) -> Result<(), ApiError> {
        let plain = serde_json::to_vec(token).map_err(|source| InternalError::Serialize {
            what: "a target token",
            source,
        })?;
        let sealed = crypto::seal(&slot.seal, slot.key.as_bytes(), &plain)?;
        self.store.set(&slot.key, &sealed, keep).await?;
        Ok(())
    }

    /// The lock key that serialises fetches for `slot`.
    pub fn lock_key(slot: &CacheSlot) -> String {
        format!("{}:lock", slot.key)
    }
}
