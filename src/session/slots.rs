//! Single-use, expiring records addressed by a secret handle (a login's `state`, a
//! logout's `state`): stored sealed under a key derived from the handle and taken with
//! GETDEL, so any instance can finish what another started, and only once.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto;
use crate::error::{ApiError, InternalError};
use crate::observed_store::ObservedStore;
use crate::store::KeyValueStore;

/// One kind of single-use record (e.g. pending logins).
#[derive(Clone)]
pub struct SealedSlots {
    store: ObservedStore,
    prefix: String,
    kind: &'static str,
}

impl SealedSlots {
    /// Records of `kind` under `prefix`.
    pub fn new(store: ObservedStore, prefix: &str, kind: &'static str) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
            kind,
        }
    }

    /// Stores `value` for `ttl` under the secret `handle`.
    pub async fn put<T: Serialize>(
        &self,
        handle: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), ApiError> {
        let key = self.key(handle);
        let plain = serde_json::to_vec(value).map_err(|source| InternalError::Serialize {
            what: "a pending login or logout",
            source,
        })?;
        let sealed = crypto::seal(&self.sealing_key(handle), key.as_bytes(), &plain)?;
        self.store.set(&key, &sealed, ttl).await?;
        Ok(())
    }

    /// Removes and returns the record of `handle`; `None` if unknown, used or expired.
    pub async fn take<T: DeserializeOwned>(&self, handle: &str) -> Result<Option<T>, ApiError> {
        let key = self.key(handle);
        let Some(sealed) = self.store.take(&key).await? else {
            return Ok(None);
        };
        Ok(
            crypto::open(&self.sealing_key(handle), key.as_bytes(), sealed)
                .and_then(|plain| serde_json::from_slice(&plain).ok()),
        )
    }

    fn key(&self, handle: &str) -> String {
        let name = crypto::derive_name(self.kind, handle.as_bytes());
        format!("{}{}:{name}", self.prefix, self.kind)
    }

    fn sealing_key(&self, handle: &str) -> [u8; 32] {
        crypto::derive_key(&format!("{}-seal", self.kind), handle.as_bytes())
    }
}
