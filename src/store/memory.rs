//! The in-process store: a sharded map (DashMap) of values and sets with expiry
//! instants. For one instance (development, tests); it mirrors Redis semantics
//! closely enough that the same test suite runs against both.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use super::{KeyValueStore, StoreError, listing_field, ttl_millis, unix_now_ms};

/// How often (at most) a write sweeps out expired entries, so memory does not grow
/// with keys nobody reads again.
const SWEEP_INTERVAL: Duration = Duration::from_secs(2);

/// An in-memory [`KeyValueStore`]. Cloning shares the same map.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Sizes only: the values are sessions.
        f.debug_struct("MemoryStore")
            .field("entries", &self.inner.map.len())
            .finish()
    }
}

struct Inner {
    map: DashMap<String, Entry>,
    /// Origin of `next_sweep_ms`.
    epoch: Instant,
    /// Milliseconds after `epoch` before which no sweep runs.
    next_sweep_ms: AtomicU64,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            map: DashMap::new(),
            epoch: Instant::now(),
            next_sweep_ms: AtomicU64::new(duration_ms(SWEEP_INTERVAL)),
        }
    }
}

struct Entry {
    data: Data,
    expires_at: Instant,
}

enum Data {
    Bytes(Vec<u8>),
    /// A back-channel index: each member with its expiry (Unix ms).
    Index(HashMap<String, i64>),
    /// A listing hash: each member's entry.
    Listing(HashMap<String, Vec<u8>>),
}

impl Entry {
    fn bytes(value: &[u8], ttl: Duration, now: Instant) -> Self {
        Self {
            data: Data::Bytes(value.to_vec()),
            expires_at: deadline(now, ttl),
        }
    }

    fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    fn holds(&self, value: &[u8], now: Instant) -> bool {
        self.is_live(now) && matches!(&self.data, Data::Bytes(held) if held.as_slice() == value)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops expired entries, at most once per [`SWEEP_INTERVAL`]. Called at the
    /// start of writes, before any map guard is held (a sweep takes every shard).
    fn maybe_sweep(&self) {
        let inner = &self.inner;
        let now_ms = duration_ms(inner.epoch.elapsed());
        let due = inner.next_sweep_ms.load(Ordering::Relaxed);
        if now_ms < due {
            return;
        }
        let next = now_ms.saturating_add(duration_ms(SWEEP_INTERVAL));
        if inner
            .next_sweep_ms
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let now = Instant::now();
            inner.map.retain(|_, entry| entry.is_live(now));
        }
    }
}

impl KeyValueStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        match self.inner.map.get(key) {
            Some(entry) if entry.is_live(now) => match &entry.data {
                Data::Bytes(value) => Ok(Some(value.clone())),
                Data::Index(_) | Data::Listing(_) => Err(wrong_type()),
            },
            _ => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            // Like MGET: a key holding a set reads as absent.
            values.push(self.get(key).await.unwrap_or(None));
        }
        Ok(values)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.maybe_sweep();
        let entry = Entry::bytes(value, ttl, Instant::now());
        self.inner.map.insert(key.to_owned(), entry);
        Ok(())
    }

    async fn replace(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.maybe_sweep();
        let now = Instant::now();
        match self.inner.map.get_mut(key) {
            Some(mut entry) if entry.is_live(now) => {
                *entry = Entry::bytes(value, ttl, now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.maybe_sweep();
        let now = Instant::now();
        match self.inner.map.entry(key.to_owned()) {
            MapEntry::Occupied(entry) if entry.get().is_live(now) => Ok(false),
            MapEntry::Occupied(mut entry) => {
                entry.insert(Entry::bytes(value, ttl, now));
                Ok(true)
            }
            MapEntry::Vacant(entry) => {
                entry.insert(Entry::bytes(value, ttl, now));
                Ok(true)
            }
        }
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.maybe_sweep();
        let now = Instant::now();
        let taken = self.inner.map.remove_if(key, |_, entry| {
            matches!(entry.data, Data::Bytes(_)) || !entry.is_live(now)
        });
        match taken {
            Some((
                _,
                Entry {
                    data: Data::Bytes(value),
                    expires_at,
                },
            )) if expires_at > now => Ok(Some(value)),
            Some(_) => Ok(None),
            // Only a live set is left in place, and GETDEL on a set is an error.
            None if self.inner.map.contains_key(key) => Err(wrong_type()),
            None => Ok(None),
        }
    }

    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        self.maybe_sweep();
        let now = Instant::now();
        let removed = keys
            .iter()
            .filter_map(|key| self.inner.map.remove(key.as_str()))
            .filter(|(_, entry)| entry.is_live(now))
            .count();
        Ok(u64::try_from(removed).unwrap_or(u64::MAX))
    }

    async fn index_add(
        &self,
        index: &str,
        member: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.maybe_sweep();
        let now = Instant::now();
        let now_ms = unix_now_ms();
        let mut entry = match self.inner.map.entry(index.to_owned()) {
            MapEntry::Occupied(entry) if entry.get().is_live(now) => entry,
            MapEntry::Occupied(mut entry) => {
                entry.insert(empty_index(now));
                entry
            }
            MapEntry::Vacant(entry) => entry.insert_entry(empty_index(now)),
        };
        let Data::Index(members) = &mut entry.get_mut().data else {
            return Err(wrong_type());
        };
        members.insert(member.to_owned(), expires_at_ms);
        members.retain(|_, expiry| *expiry > now_ms);
        let latest = members.values().max().copied();
        match latest {
            // The index expires with its latest member, never later.
            Some(latest) => {
                let left = u64::try_from(latest.saturating_sub(now_ms)).unwrap_or(0);
                entry.get_mut().expires_at = deadline(now, Duration::from_millis(left));
            }
            None => {
                entry.remove();
            }
        }
        Ok(())
    }

    async fn index_members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let now = Instant::now();
        let now_ms = unix_now_ms();
        match self.inner.map.get(index) {
            Some(entry) if entry.is_live(now) => match &entry.data {
                Data::Index(members) => Ok(members
                    .iter()
                    .filter(|(_, expiry)| **expiry > now_ms)
                    .map(|(member, _)| member.clone())
                    .collect()),
                Data::Bytes(_) | Data::Listing(_) => Err(wrong_type()),
            },
            _ => Ok(Vec::new()),
        }
    }

    async fn index_remove(&self, index: &str, member: &str) -> Result<(), StoreError> {
        self.maybe_sweep();
        let now = Instant::now();
        let MapEntry::Occupied(mut entry) = self.inner.map.entry(index.to_owned()) else {
            return Ok(());
        };
        if !entry.get().is_live(now) {
            return Ok(());
        }
        let Data::Index(members) = &mut entry.get_mut().data else {
            return Err(wrong_type());
        };
        members.remove(member);
        if members.is_empty() {
            entry.remove();
        }
        Ok(())
    }

    async fn delete_indexed(&self, index: &str, key_prefix: &str) -> Result<u64, StoreError> {
        let members = self.index_members(index).await?;
        let mut keys: Vec<String> = members
            .into_iter()
            .map(|member| crate::store::indexed_key(key_prefix, member))
            .collect();
        keys.push(index.to_owned());
        let deleted = self.delete(&keys).await?;
        // The index counts when it was live, which is exactly when it had members.
        Ok(deleted.saturating_sub(u64::from(keys.len() > 1)))
    }

    async fn listing_add(
        &self,
        index: &str,
        listing: &str,
        member: &str,
        expires_at_ms: i64,
        entry: &[u8],
    ) -> Result<(), StoreError> {
        self.index_add(index, member, expires_at_ms).await?;
        let now = Instant::now();
        let (members, expires_at) = match self.inner.map.get(index) {
            Some(found) if found.is_live(now) => match &found.data {
                Data::Index(members) => (members.clone(), found.expires_at),
                _ => return Err(wrong_type()),
            },
            _ => {
                self.inner.map.remove(listing);
                return Ok(());
            }
        };
        let mut found = match self.inner.map.entry(listing.to_owned()) {
            MapEntry::Occupied(found) if found.get().is_live(now) => found,
            MapEntry::Occupied(mut found) => {
                found.insert(empty_listing(now));
                found
            }
            MapEntry::Vacant(vacant) => vacant.insert_entry(empty_listing(now)),
        };
        let Data::Listing(entries) = &mut found.get_mut().data else {
            return Err(wrong_type());
        };
        let fields: std::collections::HashSet<&str> =
            members.keys().map(|listed| listing_field(listed)).collect();
        entries.retain(|field, _| fields.contains(field.as_str()));
        entries.insert(listing_field(member).to_owned(), entry.to_vec());
        found.get_mut().expires_at = expires_at;
        Ok(())
    }

    async fn listing_touch(
        &self,
        listing: &str,
        member: &str,
        first_word: &[u8],
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let Some(mut found) = self.inner.map.get_mut(listing) else {
            return Ok(false);
        };
        if !found.is_live(now) {
            return Ok(false);
        }
        let Data::Listing(entries) = &mut found.data else {
            return Err(wrong_type());
        };
        Ok(match entries.get_mut(listing_field(member)) {
            Some(entry) => {
                *entry = super::with_first_word(entry, first_word);
                true
            }
            None => false,
        })
    }

    async fn listing_entries(
        &self,
        index: &str,
        listing: &str,
    ) -> Result<super::ListingEntries, StoreError> {
        let members = self.index_members(index).await?;
        let now = Instant::now();
        let found = self.inner.map.get(listing);
        let entries = match found.as_deref() {
            Some(Entry {
                data: Data::Listing(entries),
                expires_at,
            }) if *expires_at > now => Some(entries),
            Some(entry) if entry.is_live(now) => return Err(wrong_type()),
            _ => None,
        };
        Ok(members
            .into_iter()
            .map(|member| {
                let entry =
                    entries.and_then(|entries| entries.get(listing_field(&member)).cloned());
                (member, entry)
            })
            .collect())
    }

    async fn listing_remove(
        &self,
        index: &str,
        listing: &str,
        member: &str,
    ) -> Result<(), StoreError> {
        self.index_remove(index, member).await?;
        let MapEntry::Occupied(mut found) = self.inner.map.entry(listing.to_owned()) else {
            return Ok(());
        };
        if let Data::Listing(entries) = &mut found.get_mut().data {
            entries.remove(listing_field(member));
            if entries.is_empty() {
                found.remove();
            }
        }
        Ok(())
    }

    async fn renew_if_value(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        match self.inner.map.get_mut(key) {
            Some(mut entry) if entry.holds(value, now) => {
                entry.expires_at = deadline(now, ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_if_value(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(self
            .inner
            .map
            .remove_if(key, |_, entry| entry.holds(value, now))
            .is_some())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An index without members, for `index_add` to fill (it never stays empty).
fn empty_index(now: Instant) -> Entry {
    Entry {
        data: Data::Index(HashMap::new()),
        expires_at: now,
    }
}

/// A listing hash without entries, for `listing_add` to fill.
fn empty_listing(now: Instant) -> Entry {
    Entry {
        data: Data::Listing(HashMap::new()),
        expires_at: now,
    }
}

/// `now + ttl` as the stores round it (see [`ttl_millis`]).
fn deadline(now: Instant, ttl: Duration) -> Instant {
    let ttl = Duration::from_millis(ttl_millis(ttl));
    // Unreachable with the TTL cap, but `Instant + Duration` panics on overflow.
    now.checked_add(ttl).unwrap_or(now)
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Same condition as Redis' `WRONGTYPE`: a value command on an index or the reverse.
fn wrong_type() -> StoreError {
    StoreError::Unavailable("wrong kind of value for this operation".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test]
    async fn writes_sweep_out_expired_entries() {
        let store = MemoryStore::new();
        // Lifetimes long enough that none ends while the map is filled (an index
        // member already past its expiry is dropped at once), short enough to wait out.
        let lifetime = Duration::from_millis(300);
        for n in 0..100 {
            let key = format!("k{n}");
            store.set(&key, b"v", lifetime).await.unwrap();
            store
                .index_add(&format!("i{n}"), "m", unix_now_ms() + 300)
                .await
                .unwrap();
        }
        assert_eq!(store.inner.map.len(), 200);
        tokio::time::sleep(lifetime + Duration::from_millis(20)).await;
        store.inner.next_sweep_ms.store(0, Ordering::Relaxed);
        store
            .set("kept", b"v", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.inner.map.len(), 1);
        // And not again before the interval is over.
        store
            .set("short", b"v", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        store
            .set("other", b"v", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.inner.map.len(), 3);
    }
}
