//! Single flight across instances: of many concurrent requests for the same upstream
//! result, one takes a short store lock (`SET NX PX`, renewed while it works) and produces
//! it; the others wait and re-read the result instead of calling upstream again.

use std::time::{Duration, Instant};

use crate::crypto;
use crate::error::{ApiError, InternalError};
use crate::observed_store::ObservedStore;
use crate::store::KeyValueStore;

/// How long a lock lives without renewal (a crashed holder frees it this fast).
const LOCK_TTL: Duration = Duration::from_secs(5);
/// How long a waiter waits for another holder's result.
const WAIT_LIMIT: Duration = Duration::from_secs(15);
/// First and longest pause between a waiter's re-reads.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_millis(100);
/// How long a holder's failure is kept for the waiters of that holder, so that they
/// answer with it instead of each calling upstream again in turn.
const FAILURE_TTL: Duration = Duration::from_secs(5);

/// Runs upstream calls at most once at a time per lock key, over all instances.
#[derive(Clone)]
pub struct SingleFlight {
    store: ObservedStore,
}

impl SingleFlight {
    /// Locks live in `store`.
    pub fn new(store: ObservedStore) -> Self {
        Self { store }
    }

    /// Returns what `ready` finds; if nothing, `produce` runs under `lock_key` — in this
    /// request if it wins the lock, else in the winner's, whose result `ready` then finds.
    pub async fn run<T>(
        &self,
        lock_key: &str,
        mut ready: impl AsyncFnMut() -> Result<Option<T>, ApiError>,
        produce: impl AsyncFnOnce() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let holder = crypto::random_token::<16>()?;
        let failed_key = format!("{lock_key}:failed");
        // The holder we last saw working on it, whose failure we then share.
        let mut awaited: Option<Vec<u8>> = None;
        let deadline = Instant::now() + WAIT_LIMIT;
        let mut pause = FIRST_PAUSE;
        loop {
            if let Some(found) = ready().await? {
                return Ok(found);
            }
            if let Some(awaited) = &awaited
                && self.store.get(&failed_key).await?.as_ref() == Some(awaited)
            {
                tracing::warn!(
                    check = "single-flight holder failed",
                    "the concurrent upstream call failed; not calling again"
                );
                return Err(ApiError::TokenUnavailable(
                    "A concurrent token request failed; try again later".to_owned(),
                ));
            }
            if self
                .store
                .set_if_absent(lock_key, holder.as_bytes(), LOCK_TTL)
                .await?
            {
                // The previous holder may have finished between our read and our lock.
                let result = match ready().await {
                    Ok(Some(found)) => Ok(found),
                    Ok(None) => {
                        let produced = self.produce_holding(lock_key, &holder, produce).await;
                        if produced.is_err()
                            && let Err(error) = self
                                .store
                                .set(&failed_key, holder.as_bytes(), FAILURE_TTL)
                                .await
                        {
                            tracing::warn!(%error, "could not record a single-flight failure for the waiters");
                        }
                        produced
                    }
                    Err(error) => Err(error),
                };
                if let Err(error) = self
                    .store
                    .delete_if_value(lock_key, holder.as_bytes())
                    .await
                {
                    tracing::warn!(%error, "could not release a single-flight lock; it expires by itself");
                }
                return result;
            }
            if let Some(current) = self.store.get(lock_key).await? {
                awaited = Some(current);
            }
            if Instant::now() >= deadline {
                return Err(ApiError::TokenUnavailable(
                    "Timed out waiting for a concurrent token request".to_owned(),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    async fn produce_holding<T>(
        &self,
        lock_key: &str,
        holder: &str,
        produce: impl AsyncFnOnce() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let renew = async {
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                match self
                    .store
                    .renew_if_value(lock_key, holder.as_bytes(), LOCK_TTL)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!("a single-flight lock was lost while its call ran"),
                    Err(error) => tracing::warn!(%error, "could not renew a single-flight lock"),
                }
            }
        };
        tokio::select! {
            result = produce() => result,
            () = renew => Err(InternalError::LockRenewalEnded.into()),
        }
    }
}
