//! The connection side of the Redis store: where commands go ([`Backend`]), one
//! call's round trip under [`CALL_DEADLINE`](super::CALL_DEADLINE), what is known
//! about Redis' health, and the watcher task that pings, notices outages and
//! recoveries, and makes the failing-fast switch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{
    Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, ScriptInvocation, ServerErrorKind,
    Value,
};
use tokio::sync::Notify;
use tokio::time::{Instant, timeout};

use super::conn::Conn;
use super::sentinel::Sentinel;
use super::{
    CALL_DEADLINE, PROBE_MAX, PROBE_MIN, SENTINEL_REFRESH_TICKS, WATCH_INTERVAL, describe,
    duration_ms, unavailable,
};
use crate::store::StoreError;

/// Where commands go.
#[derive(Clone)]
pub(super) enum Backend {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<Sentinel>),
}

impl Backend {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Standalone(_) => "standalone",
            Self::Cluster(_) => "cluster",
            Self::Sentinel(_) => "sentinel",
        }
    }

    /// A handle on the current connection (cheap: reference-counted).
    pub(super) fn connection(&self) -> RedisResult<Conn> {
        match self {
            Self::Standalone(manager) => Ok(Conn::Manager(manager.clone())),
            Self::Cluster(cluster) => Ok(Conn::Cluster(cluster.clone())),
            Self::Sentinel(sentinel) => sentinel.connection(),
        }
    }
}

/// The backend and what is known about its health; shared by calls and the watcher.
#[derive(Clone)]
pub(super) struct Link {
    pub(super) backend: Backend,
    pub(super) health: Arc<Health>,
    /// The key the readiness probe reads: under the key prefix, so an ACL user limited
    /// to `~<key_prefix>*` may read it.
    pub(super) ready_probe_key: Arc<str>,
}

/// Who asks: a call fails fast while Redis is known down; the watcher's ping goes
/// through, since it is what finds out Redis is back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CallSource {
    Request,
    Watcher,
}

impl Link {
    /// One command, one round trip.
    pub(super) async fn query<T: FromRedisValue + Send>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.health.admit()?;
        self.command(cmd, CallSource::Request).await
    }

    pub(super) async fn command<T: FromRedisValue + Send>(
        &self,
        cmd: &Cmd,
        caller: CallSource,
    ) -> Result<T, StoreError> {
        let call = async {
            let mut connection = self.backend.connection()?;
            let reply = connection.send(cmd).await?;
            Ok(redis::from_redis_value(reply.extract_error()?)?)
        };
        self.finish(timeout(CALL_DEADLINE, call).await, caller)
    }

    /// A Lua script by hash; loaded first if Redis does not know it (after a restart).
    pub(super) async fn invoke<T: FromRedisValue + Send>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.health.admit()?;
        let call = async {
            let mut connection = self.backend.connection()?;
            invocation.invoke_async(&mut connection).await
        };
        self.finish(timeout(CALL_DEADLINE, call).await, CallSource::Request)
    }

    /// Whether requests can be served now: a cluster must say `cluster_state:ok` on
    /// every master (a node of a failed cluster still answers `PING`), a Sentinel
    /// master must be known and still be a master, and a key read must go through
    /// where session keys go.
    pub(super) async fn ready(&self) -> Result<(), StoreError> {
        self.health.admit()?;
        let call = async {
            let mut connection = self.backend.connection()?;
            match (&self.backend, &mut connection) {
                (_, Conn::Cluster(cluster)) => {
                    let routing =
                        RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                    let states = cluster
                        .route_command(redis::cmd("CLUSTER").arg("INFO").clone(), routing)
                        .await?;
                    cluster_state_ok(&states)?;
                }
                (Backend::Sentinel(_), Conn::Manager(_)) => {
                    let role = connection.send(&redis::cmd("ROLE")).await?;
                    is_master(&role)?;
                }
                (_, Conn::Manager(_)) => {}
            }
            let mut read = redis::cmd("EXISTS");
            read.arg(&*self.ready_probe_key);
            connection.send(&read).await?.extract_error()?;
            Ok(())
        };
        self.finish(timeout(CALL_DEADLINE, call).await, CallSource::Request)
    }

    fn finish<T>(
        &self,
        outcome: Result<RedisResult<T>, tokio::time::error::Elapsed>,
        caller: CallSource,
    ) -> Result<T, StoreError> {
        let (cause, unreachable, moved) = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => (
                describe(&error),
                connection_failed(&error),
                master_may_have_moved(&error),
            ),
            Err(_) => ("no answer in time".to_owned(), true, true),
        };
        if moved && let Backend::Sentinel(sentinel) = &self.backend {
            sentinel.look_up_soon();
        }
        if unreachable {
            self.health.mark_down(&cause, caller == CallSource::Request);
        }
        Err(StoreError::Unavailable(cause))
    }
}

/// Whether Redis is known to be unreachable, and since when.
pub(super) struct Health {
    kind: &'static str,
    fail_fast: bool,
    down: AtomicBool,
    epoch: Instant,
    down_since_ms: AtomicU64,
    /// Wakes the watcher when a call finds Redis unreachable.
    wake: Notify,
}

impl Health {
    pub(super) fn new(kind: &'static str, fail_fast: bool) -> Self {
        Self {
            kind,
            fail_fast,
            down: AtomicBool::new(false),
            epoch: Instant::now(),
            down_since_ms: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// Fails at once while Redis is known down (instead of waiting for a timeout).
    fn admit(&self) -> Result<(), StoreError> {
        if self.fail_fast && self.down.load(Ordering::Relaxed) {
            return Err(unavailable("not connected; reconnecting in the background"));
        }
        Ok(())
    }

    fn mark_down(&self, cause: &str, wake_watcher: bool) {
        if self.down.swap(true, Ordering::AcqRel) {
            return;
        }
        let now_ms = duration_ms(self.epoch.elapsed());
        self.down_since_ms.store(now_ms, Ordering::Relaxed);
        tracing::warn!(
            kind = self.kind,
            cause,
            "redis store unreachable; reconnecting in the background"
        );
        if wake_watcher {
            self.wake.notify_one();
        }
    }

    fn mark_up(&self) {
        if !self.down.load(Ordering::Relaxed) || !self.down.swap(false, Ordering::AcqRel) {
            return;
        }
        let since = Duration::from_millis(self.down_since_ms.load(Ordering::Relaxed));
        let down_for = self.epoch.elapsed().saturating_sub(since);
        tracing::info!(kind = self.kind, ?down_for, "redis store reachable again");
    }
}

/// The key (after the key prefix) that no one writes and the readiness probe reads: in a
/// cluster it lives in one slot like any session key, so a cluster that refuses keys
/// refuses it too.
pub(super) const READY_PROBE_KEY: &str = "ready-probe";

/// `Ok` if every master's `CLUSTER INFO` (a map of node to reply) says
/// `cluster_state:ok`.
fn cluster_state_ok(states: &Value) -> RedisResult<()> {
    let Value::Map(replies) = states else {
        return Err(cluster_down());
    };
    let all_ok = !replies.is_empty()
        && replies.iter().all(|(_, reply)| {
            let text: Result<String, _> = redis::from_redis_value_ref(reply);
            text.is_ok_and(|text| text.lines().any(|line| line.trim() == "cluster_state:ok"))
        });
    if all_ok { Ok(()) } else { Err(cluster_down()) }
}

fn cluster_down() -> RedisError {
    RedisError::from((
        ErrorKind::Server(ServerErrorKind::ClusterDown),
        "cluster state is not ok",
    ))
}

/// `Ok` if a `ROLE` reply names a master (after a failover the old master may
/// answer as a replica).
fn is_master(role: &Value) -> RedisResult<()> {
    let first = match role {
        Value::Array(items) => items.first(),
        _ => None,
    };
    let role: Option<String> = first.and_then(|first| redis::from_redis_value_ref(first).ok());
    match role.as_deref() {
        Some("master") => Ok(()),
        _ => Err(RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "the sentinels' master answers as a replica",
        ))),
    }
}

/// Errors after which the sentinels should be asked again where the master is.
pub(super) fn master_may_have_moved(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_unrecoverable_error()
        || matches!(
            error.kind(),
            ErrorKind::MasterNameNotFoundBySentinel
                | ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

/// Errors that mean Redis cannot be reached (as opposed to one lost connection,
/// which the connection manager replaces, or an error reply).
pub(super) fn connection_failed(error: &RedisError) -> bool {
    if error.is_connection_refusal() || error.is_timeout() {
        return true;
    }
    if error.is_connection_dropped() {
        return false;
    }
    error.is_io_error()
        || matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound | ErrorKind::MasterNameNotFoundBySentinel
        )
}

/// Pings every [`WATCH_INTERVAL`] while Redis answers, and every [`PROBE_MIN`]..
/// [`PROBE_MAX`] while it does not (each failed ping starts one reconnect attempt):
/// it makes the first connection at once, notices an outage and the recovery
/// without waiting for traffic, and asks the sentinels for the master now and then.
pub(super) async fn watch(link: Link) {
    let ping = redis::cmd("PING");
    let mut retry = PROBE_MIN;
    let mut connected = false;
    let mut ticks: u32 = 0;
    loop {
        if let Backend::Sentinel(sentinel) = &link.backend
            && ticks.is_multiple_of(SENTINEL_REFRESH_TICKS)
        {
            sentinel.look_up_soon();
        }
        ticks = ticks.wrapping_add(1);
        let mut outcome = link.command::<()>(&ping, CallSource::Watcher).await;
        if outcome.is_err() {
            // The failure started a reconnect (or found a lost connection): the second
            // ping sees how that went instead of a stale error.
            outcome = link.command::<()>(&ping, CallSource::Watcher).await;
        }
        let pause = match outcome {
            Ok(()) => {
                if !connected {
                    tracing::info!(kind = link.backend.kind(), "redis store connected");
                    connected = true;
                }
                link.health.mark_up();
                retry = PROBE_MIN;
                WATCH_INTERVAL
            }
            Err(StoreError::Unavailable(cause)) => {
                // Whatever the cause, calls would fail too: let them fail fast.
                link.health.mark_down(&cause, false);
                let pause = retry;
                retry = (retry * 2).min(PROBE_MAX);
                pause
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = link.health.wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn causes_name_the_failure_without_the_servers_message() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(describe(&refused), "connection refused");
        assert!(connection_failed(&refused));
        let lost = RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(describe(&lost), "connection lost");
        assert!(!connection_failed(&lost));
        let timed_out = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(connection_failed(&timed_out));
        let parse = RedisError::from((ErrorKind::Parse, "bad", "secret-value".to_owned()));
        assert!(!describe(&parse).contains("secret"));
    }
}
