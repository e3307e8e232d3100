//! Sentinel mode: the master the sentinels name, looked up in the background and
//! again after errors that suggest a failover, and the connection to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use redis::aio::ConnectionManager;
use redis::sentinel::SentinelClient;
use redis::{ErrorKind, RedisError, RedisResult};
use tokio::time::timeout;

use super::conn::Conn;
use super::{SENTINEL_LOOKUP_TIMEOUT, describe, manager_config};

/// Sentinel mode: the master the sentinels name, and the connection to it.
pub(super) struct Sentinel {
    pub(super) client: tokio::sync::Mutex<SentinelClient>,
    pub(super) master_name: String,
    /// Read on every call (a brief uncontended read lock), written on failover.
    pub(super) master: RwLock<Option<Master>>,
    pub(super) looking_up: AtomicBool,
}

pub(super) struct Master {
    address: String,
    manager: ConnectionManager,
}

impl Sentinel {
    pub(super) fn connection(&self) -> RedisResult<Conn> {
        let master = self.master.read().unwrap_or_else(PoisonError::into_inner);
        match master.as_ref() {
            Some(master) => Ok(Conn::Manager(master.manager.clone())),
            None => Err(RedisError::from((
                ErrorKind::MasterNameNotFoundBySentinel,
                "no master known yet",
            ))),
        }
    }

    /// Starts a lookup in the background unless one is running.
    pub(super) fn look_up_soon(self: &Arc<Self>) {
        if self.looking_up.swap(true, Ordering::AcqRel) {
            return;
        }
        let sentinel = Arc::clone(self);
        tokio::spawn(async move {
            sentinel.look_up().await;
            sentinel.looking_up.store(false, Ordering::Release);
        });
    }

    /// Asks the sentinels for the master; switches connections if it moved.
    async fn look_up(&self) {
        let lookup = async { self.client.lock().await.async_get_client().await };
        let client = match timeout(SENTINEL_LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => {
                let cause = describe(&error);
                tracing::warn!(master = %self.master_name, %cause, "redis sentinel lookup failed");
                return;
            }
            Err(_) => {
                tracing::warn!(master = %self.master_name, "redis sentinel lookup timed out");
                return;
            }
        };
        let address = client.get_connection_info().addr().to_string();
        let known = self
            .master
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|m| m.address.clone());
        if known.as_deref() == Some(address.as_str()) {
            return;
        }
        let manager = match ConnectionManager::new_lazy_with_config(client, manager_config()) {
            Ok(manager) => manager,
            Err(error) => {
                let cause = describe(&error);
                tracing::warn!(master = %self.master_name, %cause, "redis sentinel master unusable");
                return;
            }
        };
        *self.master.write().unwrap_or_else(PoisonError::into_inner) = Some(Master {
            address: address.clone(),
            manager,
        });
        tracing::info!(master = %self.master_name, %address, "redis sentinel: using master");
    }
}
