//! The key-value storage contract under sessions, pending logins, logout-token
//! replay (`jti`), token caches and single-flight locks, with two implementations:
//! [`MemoryStore`] (one instance, development and tests) and [`RedisStore`]
//! (standalone, TLS, cluster or sentinel Redis).
//!
//! Keys are plain strings (they may carry Redis hash tags `{...}` so related keys
//! share a cluster slot); values are opaque bytes. Encryption and key naming belong
//! to the layer above. Every call either answers or fails with
//! [`StoreError::Unavailable`]; none panics and, for Redis, none takes longer than
//! about 1.5 s.

mod memory;
mod redis;

use std::future::Future;
use std::time::Duration;

pub use self::memory::MemoryStore;
pub use self::redis::{RedisOptions, RedisStore};

/// The members of an index, each with its listing entry (see
/// [`KeyValueStore::listing_entries`]).
pub type ListingEntries = Vec<(String, Option<Vec<u8>>)>;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer, or answered with an error. The text names a cause
    /// (e.g. "connection refused", "timed out") and never a key, value or password.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// The operations the service needs from its store; one Redis command (or one
/// round trip) each. TTLs are rounded down to milliseconds, at least 1 ms.
pub trait KeyValueStore: Send + Sync + 'static {
    /// The value under `key`, `None` if absent or expired (Redis `GET`).
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// The values under `keys`, in order, in one round trip (Redis `MGET`; a cluster
    /// splits it by slot).
    fn get_many(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, StoreError>> + Send;

    /// Stores `value` under `key` for `ttl`, replacing anything there (`SET PX`).
    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores `value` under `key` for `ttl` only if the key exists (`SET XX PX`);
    /// `true` if it did and was replaced.
    fn replace(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores `value` under `key` for `ttl` only if the key is absent (`SET NX PX`);
    /// `true` if it was stored.
    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes and returns the value under `key` (`GETDEL`): of many concurrent
    /// callers exactly one gets it.
    fn take(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Removes `keys` (values or indexes); the number that existed (`DEL`). In a
    /// Redis cluster, keys in different slots are deleted slot by slot (not atomically).
    fn delete(&self, keys: &[String]) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Adds `member` to the back-channel index `index`, to stay listed until
    /// `expires_at_ms` (Unix milliseconds, the latest the member can live). Every
    /// add also drops the members whose time has passed and sets the index to expire
    /// with its latest member, never later: the index stays bounded by the members
    /// that can still be alive (Redis: a sorted set scored by expiry, trimmed with
    /// `ZREMRANGEBYSCORE` and `PEXPIREAT`, in one atomic script).
    fn index_add(
        &self,
        index: &str,
        member: &str,
        expires_at_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The members of `index` whose time has not passed, empty if absent.
    fn index_members(
        &self,
        index: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Removes `member` from `index`; an emptied index disappears.
    fn index_remove(
        &self,
        index: &str,
        member: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes every member of `index` (each names the key `key_prefix + member`, or is
    /// that key itself when it already starts with `key_prefix`) and the index itself;
    /// the number of member keys that existed. Two round trips however many members
    /// (Redis: the members, then one `DEL` of them all, split by slot in a cluster).
    fn delete_indexed(
        &self,
        index: &str,
        key_prefix: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// [`Self::index_add`], and in the same atomic step stores `entry` for `member` in the
    /// hash `listing` (a key in `index`'s cluster slot: both carry one hash tag): the
    /// entries of members the index drops go too, and the hash expires with the index.
    /// What a session list shows lives there, beside the index (SPEC 11). An entry is
    /// filed under the member's first [`LISTING_FIELD_LEN`] bytes: members must differ
    /// there (random names do), and the hash stays small.
    fn listing_add(
        &self,
        index: &str,
        listing: &str,
        member: &str,
        expires_at_ms: i64,
        entry: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces the first word (the bytes before the first space) of `member`'s entry in
    /// `listing` by `first_word`, only if the entry exists (so an ended session's entry
    /// never comes back); `true` if it did.
    fn listing_touch(
        &self,
        listing: &str,
        member: &str,
        first_word: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The members of `index` whose time has not passed, each with its entry in
    /// `listing` (`None` without one), in one round trip.
    fn listing_entries(
        &self,
        index: &str,
        listing: &str,
    ) -> impl Future<Output = Result<ListingEntries, StoreError>> + Send;

    /// Removes `member` from `index` and its entry from `listing`; an emptied index and
    /// hash disappear.
    fn listing_remove(
        &self,
        index: &str,
        listing: &str,
        member: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lock renewal: sets the expiry of `key` to `ttl` only if it holds `value`;
    /// `true` if it did (atomic, a Lua script on Redis).
    fn renew_if_value(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Lock release: removes `key` only if it holds `value`; `true` if it did
    /// (atomic, a Lua script on Redis).
    fn delete_if_value(
        &self,
        key: &str,
        value: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// `Ok` if the store can serve requests now (for `/health/ready`): on Redis a
    /// key read travels the path session keys take, a cluster must report
    /// `cluster_state:ok` on every master, and in Sentinel mode a master must be known
    /// and answer as master.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The configured store: enum dispatch, no boxing. Cloning is cheap (shared inside).
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// In this process only.
    Memory(MemoryStore),
    /// Redis (standalone, TLS, cluster or sentinel).
    Redis(RedisStore),
}

impl AnyStore {
    /// A fresh in-memory store.
    pub fn memory() -> Self {
        Self::Memory(MemoryStore::new())
    }

    /// A Redis store for `url`; see [`RedisStore::connect`] (it does not wait for
    /// Redis and fails only on a malformed URL or outside a Tokio runtime).
    pub fn redis(url: &str) -> Result<Self, StoreError> {
        RedisStore::connect(url).map(Self::Redis)
    }
}

/// Forwards one trait method to the store inside.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($store) => $call.await,
            AnyStore::Redis($store) => $call.await,
        }
    };
}

impl KeyValueStore for AnyStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, store => store.get(key))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        dispatch!(self, store => store.get_many(keys))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        dispatch!(self, store => store.set(key, value, ttl))
    }

    async fn replace(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        dispatch!(self, store => store.replace(key, value, ttl))
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => store.set_if_absent(key, value, ttl))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, store => store.take(key))
    }

    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        dispatch!(self, store => store.delete(keys))
    }

    async fn index_add(
        &self,
        index: &str,
        member: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.index_add(index, member, expires_at_ms))
    }

    async fn index_members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self, store => store.index_members(index))
    }

    async fn index_remove(&self, index: &str, member: &str) -> Result<(), StoreError> {
        dispatch!(self, store => store.index_remove(index, member))
    }

    async fn delete_indexed(&self, index: &str, key_prefix: &str) -> Result<u64, StoreError> {
        dispatch!(self, store => store.delete_indexed(index, key_prefix))
    }

    async fn listing_add(
        &self,
        index: &str,
        listing: &str,
        member: &str,
        expires_at_ms: i64,
        entry: &[u8],
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.listing_add(index, listing, member, expires_at_ms, entry))
    }

    async fn listing_touch(
        &self,
        listing: &str,
        member: &str,
        first_word: &[u8],
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => store.listing_touch(listing, member, first_word))
    }

    async fn listing_entries(
        &self,
        index: &str,
        listing: &str,
    ) -> Result<ListingEntries, StoreError> {
        dispatch!(self, store => store.listing_entries(index, listing))
    }

    async fn listing_remove(
        &self,
        index: &str,
        listing: &str,
        member: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.listing_remove(index, listing, member))
    }

    async fn renew_if_value(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => store.renew_if_value(key, value, ttl))
    }

    async fn delete_if_value(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        dispatch!(self, store => store.delete_if_value(key, value))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, store => store.ping())
    }
}

/// Longest TTL honoured (100 years): keeps `Instant` arithmetic and Redis'
/// expire-time range safe.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

/// `ttl` in whole milliseconds, clamped to `1..=MAX_TTL_MS` so both stores treat
/// zero and huge TTLs alike (Redis refuses `PX 0`).
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MS)
}

/// Milliseconds since the Unix epoch by this machine's clock (the clock session
/// expiry times are computed with).
fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The key an index member names (see [`KeyValueStore::delete_indexed`]).
pub fn indexed_key(key_prefix: &str, member: String) -> String {
    if member.starts_with(key_prefix) {
        member
    } else {
        format!("{key_prefix}{member}")
    }
}

/// How many leading bytes of a member name its listing entry is filed under (see
/// [`KeyValueStore::listing_add`]): 96 bits of a random base64url name.
pub const LISTING_FIELD_LEN: usize = 16;

/// The listing field of `member`: its first [`LISTING_FIELD_LEN`] bytes (all of a shorter
/// one; never splits a character).
pub fn listing_field(member: &str) -> &str {
    let mut end = member.len().min(LISTING_FIELD_LEN);
    while !member.is_char_boundary(end) {
        end -= 1;
    }
    member.get(..end).unwrap_or(member)
}

/// `entry` with its first word (the bytes before the first space, or all of it)
/// replaced by `first_word` (see [`KeyValueStore::listing_touch`]).
pub fn with_first_word(entry: &[u8], first_word: &[u8]) -> Vec<u8> {
    let rest = entry
        .iter()
        .position(|byte| *byte == b' ')
        .and_then(|space| entry.get(space..))
        .unwrap_or_default();
    [first_word, rest].concat()
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn a_touch_replaces_the_first_word_only() {
        assert_eq!(with_first_word(b"1 2 Firefox", b"9"), b"9 2 Firefox");
        assert_eq!(with_first_word(b"1", b"9"), b"9");
    }
}
