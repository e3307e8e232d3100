//! The store as the service uses it: any [`KeyValueStore`] with every failed call counted
//! in `identity_session_store_errors_total`, and each call a span when traces are on.

use std::time::Duration;

use prometheus::IntCounter;
use tracing::Instrument;

use crate::spans;
use crate::store::{AnyStore, KeyValueStore, StoreError};

/// A store whose failures are counted.
#[derive(Clone)]
pub struct ObservedStore {
    inner: AnyStore,
    errors: IntCounter,
}

impl ObservedStore {
    /// Counts the failures of `inner` in `errors`.
    pub fn new(inner: AnyStore, errors: IntCounter) -> Self {
        Self { inner, errors }
    }

    fn observe<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_err() {
            self.errors.inc();
        }
        result
    }
}

impl KeyValueStore for ObservedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.observe(self.inner.get(key).instrument(spans::store("get")).await)
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.observe(
            self.inner
                .get_many(keys)
                .instrument(spans::store("get_many"))
                .await,
        )
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.observe(
            self.inner
                .set(key, value, ttl)
                .instrument(spans::store("set"))
                .await,
        )
    }

    async fn replace(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.observe(
            self.inner
                .replace(key, value, ttl)
                .instrument(spans::store("replace"))
                .await,
        )
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.observe(
            self.inner
                .set_if_absent(key, value, ttl)
                .instrument(spans::store("set_if_absent"))
                .await,
        )
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.observe(self.inner.take(key).instrument(spans::store("take")).await)
    }

    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        self.observe(
            self.inner
                .delete(keys)
                .instrument(spans::store("delete"))
                .await,
        )
    }

    async fn index_add(
        &self,
        index: &str,
        member: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.observe(
            self.inner
                .index_add(index, member, expires_at_ms)
                .instrument(spans::store("index_add"))
                .await,
        )
    }

    async fn index_members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        self.observe(
            self.inner
                .index_members(index)
                .instrument(spans::store("index_members"))
                .await,
        )
    }

    async fn index_remove(&self, index: &str, member: &str) -> Result<(), StoreError> {
        self.observe(
            self.inner
                .index_remove(index, member)
                .instrument(spans::store("index_remove"))
                .await,
        )
    }

    async fn listing_add(
        &self,
        index: &str,
        listing: &str,
        member: &str,
        expires_at_ms: i64,
        entry: &[u8],
    ) -> Result<(), StoreError> {
        self.observe(
            self.inner
                .listing_add(index, listing, member, expires_at_ms, entry)
                .instrument(spans::store("listing_add"))
                .await,
        )
    }

    async fn listing_touch(
        &self,
        listing: &str,
        member: &str,
        first_word: &[u8],
    ) -> Result<bool, StoreError> {
        self.observe(
            self.inner
                .listing_touch(listing, member, first_word)
                .instrument(spans::store("listing_touch"))
                .await,
        )
    }

    async fn listing_entries(
        &self,
        index: &str,
        listing: &str,
    ) -> Result<crate::store::ListingEntries, StoreError> {
        self.observe(
            self.inner
                .listing_entries(index, listing)
                .instrument(spans::store("listing_entries"))
                .await,
        )
    }

    async fn listing_remove(
        &self,
        index: &str,
        listing: &str,
        member: &str,
    ) -> Result<(), StoreError> {
        self.observe(
            self.inner
                .listing_remove(index, listing, member)
                .instrument(spans::store("listing_remove"))
                .await,
        )
    }

    async fn delete_indexed(&self, index: &str, key_prefix: &str) -> Result<u64, StoreError> {
        self.observe(
            self.inner
                .delete_indexed(index, key_prefix)
                .instrument(spans::store("delete_indexed"))
                .await,
        )
    }

    async fn renew_if_value(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.observe(
            self.inner
                .renew_if_value(key, value, ttl)
                .instrument(spans::store("renew_if_value"))
                .await,
        )
    }

    async fn delete_if_value(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        self.observe(
            self.inner
                .delete_if_value(key, value)
                .instrument(spans::store("delete_if_value"))
                .await,
        )
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.observe(self.inner.ping().instrument(spans::store("ping")).await)
    }
}
