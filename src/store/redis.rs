//! The Redis store: standalone or TLS Redis through one multiplexed connection
//! (`ConnectionManager`), Redis Cluster (`cluster_async::ClusterConnection`, commands
//! routed by slot) or Sentinel (the master is looked up and looked up again after
//! connection errors, so a failover is followed).
//!
//! SPEC section 7 ("Redis down") shapes it: connecting never waits for Redis (the
//! connection is made and remade in the background) and every call gives up after
//! [`CALL_DEADLINE`]. A watcher task pings every second; once a call or a ping finds
//! Redis unreachable (standalone and sentinel), calls fail at once instead of each
//! waiting for a timeout, and the watcher alone retries, backing off from 100 ms to
//! 500 ms, until a ping answers. The hot path (`get`) is one atomic load and one
//! command on the shared connection: no lock, no extra round trip.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue, IntoConnectionInfo,
    Pipeline, RedisError, RedisFuture, RedisResult, Script, ScriptInvocation, ServerErrorKind,
    Value,
};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::{Instant, timeout};

use super::{KeyValueStore, StoreError, ttl_millis};

/// Each connection attempt gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Cluster: each command to a node gives up after this (the cluster client retries
/// within [`CALL_DEADLINE`]). Standalone and sentinel connections have no timeout of
/// their own: [`CALL_DEADLINE`] bounds the whole call, one timer instead of two.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Outer bound on a whole call, waiting for a reconnect included (SPEC: 503 within 2 s).
const CALL_DEADLINE: Duration = Duration::from_millis(1500);
/// Connection attempts per reconnect round beyond the first: none, because the
/// watcher paces the rounds (see [`PROBE_MIN`]) and calls must not queue behind them.
const RECONNECT_RETRIES: usize = 0;
/// First pause between pings while Redis is unreachable; it doubles up to the next.
const PROBE_MIN: Duration = Duration::from_millis(100);
/// Longest pause between pings while Redis is unreachable.
const PROBE_MAX: Duration = Duration::from_millis(500);
/// Cluster: longest wait between the client's own retries (milliseconds).
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 500;
/// The kernel drops a connection whose sent data stays unacknowledged this long, so a
/// vanished host (no RST) turns into a reconnect instead of endless timeouts.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the watcher pings while Redis answers.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// The watcher asks the sentinels for the master every this many pings even when
/// all is well (a failover can leave the old master reachable, as a replica).
const SENTINEL_REFRESH_TICKS: u32 = 10;
/// Bound on one sentinel lookup.
const SENTINEL_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Port of a sentinel given without one.
const SENTINEL_DEFAULT_PORT: u16 = 26379;

/// `PEXPIRE` only if the key holds the value (lock renewal).
static RENEW_IF_VALUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
         return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
    )
});

/// `DEL` only if the key holds the value (lock release).
static DELETE_IF_VALUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
         return redis.call('DEL', KEYS[1]) end return 0",
    )
});

/// A [`KeyValueStore`] on Redis. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    link: Link,
    _watcher: Arc<Watcher>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL (and its password) is deliberately not kept.
        f.debug_struct("RedisStore")
            .field("kind", &self.link.backend.kind())
            .finish()
    }
}

impl RedisStore {
    /// A store for `url`, one of:
    /// - `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS, rustls);
    /// - `redis+cluster://[user:password@]host1:port1,host2:port2` (or `rediss+cluster://`);
    /// - `redis+sentinel://[user:password@]host1:port1,host2:port2/<master_name>[/db]`
    ///   (the credentials and db are the master's; sentinels are asked without auth;
    ///   a sentinel without a port is on 26379).
    ///
    /// Returns at once without contacting Redis: the connection is made in the
    /// background and remade after failures; until it is up, calls fail with
    /// [`StoreError::Unavailable`]. Fails only on a malformed URL, or when called
    /// outside a Tokio runtime (the background work needs one).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| unavailable("the Redis store must be created inside a Tokio runtime"))?;
        let backend = match parse(url)? {
            Target::Standalone(info) => {
                let client = Client::open(info).map_err(|_| unavailable("invalid redis URL"))?;
                let manager = ConnectionManager::new_lazy_with_config(client, manager_config())
                    .map_err(|error| unavailable(&describe(&error)))?;
                Backend::Standalone(manager)
            }
            Target::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                    .tcp_settings(tcp_settings())
                    .build()
                    .map_err(|_| unavailable("invalid redis cluster URL"))?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(RESPONSE_TIMEOUT);
                Backend::Cluster(client.get_pending_async_connection_with_config(config))
            }
            Target::Sentinel {
                sentinels,
                master_name,
                master,
            } => {
                let node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(master)
                    .set_tcp_settings(tcp_settings());
                let client = SentinelClient::build(
                    sentinels,
                    master_name.as_str(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|_| unavailable("invalid redis sentinel URL"))?;
                Backend::Sentinel(Arc::new(Sentinel {
                    client: tokio::sync::Mutex::new(client),
                    master_name,
                    master: RwLock::new(None),
                    looking_up: AtomicBool::new(false),
                }))
            }
        };
        // A cluster client handles its nodes one by one: one node down must not
        // fail calls for the others, so it never fails fast.
        let fail_fast = !matches!(backend, Backend::Cluster(_));
        let link = Link {
            health: Arc::new(Health::new(backend.kind(), fail_fast)),
            backend,
        };
        let watcher = runtime.spawn(watch(link.clone())).abort_handle();
        Ok(Self {
            link,
            _watcher: Arc::new(Watcher(watcher)),
        })
    }
}

impl KeyValueStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = Cmd::with_capacity(2, key.len() + 3);
        cmd.arg("GET").arg(key);
        self.link.query(&cmd).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut cmd = redis::cmd("MGET");
        cmd.arg(keys);
        self.link.query(&cmd).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("PX").arg(ttl_millis(ttl));
        self.link.query(&cmd).await
    }

    async fn replace(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(value)
            .arg("XX")
            .arg("PX")
            .arg(ttl_millis(ttl));
        let reply: Value = self.link.query(&cmd).await?;
        Ok(reply != Value::Nil)
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl));
        let reply: Value = self.link.query(&cmd).await?;
        Ok(reply != Value::Nil)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(key);
        self.link.query(&cmd).await
    }

    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("DEL");
        cmd.arg(keys);
        self.link.query(&cmd).await
    }

    async fn index_add(&self, index: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let ttl = ttl_millis(ttl);
        let mut pipe = redis::pipe();
        // NX sets the first expiry, GT only ever lengthens it: one short-lived
        // member must not cut the life of the others.
        pipe.cmd("SADD").arg(index).arg(member).ignore();
        pipe.cmd("PEXPIRE").arg(index).arg(ttl).arg("NX").ignore();
        pipe.cmd("PEXPIRE").arg(index).arg(ttl).arg("GT").ignore();
        self.link.query_pipeline(&pipe).await
    }

    async fn index_members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(index);
        self.link.query(&cmd).await
    }

    async fn index_remove(&self, index: &str, member: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(index).arg(member);
        self.link.query(&cmd).await
    }

    async fn renew_if_value(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut invocation = RENEW_IF_VALUE.key(key);
        invocation.arg(value).arg(ttl_millis(ttl));
        let renewed: i64 = self.link.invoke(&invocation).await?;
        Ok(renewed == 1)
    }

    async fn delete_if_value(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let mut invocation = DELETE_IF_VALUE.key(key);
        invocation.arg(value);
        let deleted: i64 = self.link.invoke(&invocation).await?;
        Ok(deleted == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.link.query(&redis::cmd("PING")).await
    }
}

/// Where commands go.
#[derive(Clone)]
enum Backend {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<Sentinel>),
}

impl Backend {
    fn kind(&self) -> &'static str {
        match self {
            Self::Standalone(_) => "standalone",
            Self::Cluster(_) => "cluster",
            Self::Sentinel(_) => "sentinel",
        }
    }

    /// A handle on the current connection (cheap: reference-counted).
    fn connection(&self) -> RedisResult<Conn> {
        match self {
            Self::Standalone(manager) => Ok(Conn::Manager(manager.clone())),
            Self::Cluster(cluster) => Ok(Conn::Cluster(cluster.clone())),
            Self::Sentinel(sentinel) => sentinel.connection(),
        }
    }
}

/// The backend and what is known about its health; shared by calls and the watcher.
#[derive(Clone)]
struct Link {
    backend: Backend,
    health: Arc<Health>,
}

/// Who asks: a call fails fast while Redis is known down; the watcher's ping goes
/// through, since it is what finds out Redis is back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    Call,
    Watcher,
}

impl Link {
    /// One command, one round trip.
    async fn query<T: FromRedisValue + Send>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.health.admit()?;
        self.command(cmd, Caller::Call).await
    }

    async fn command<T: FromRedisValue + Send>(
        &self,
        cmd: &Cmd,
        caller: Caller,
    ) -> Result<T, StoreError> {
        let call = async {
            let mut connection = self.backend.connection()?;
            let reply = connection.send(cmd).await?;
            Ok(redis::from_redis_value(reply.extract_error()?)?)
        };
        self.finish(timeout(CALL_DEADLINE, call).await, caller)
    }

    /// One pipeline, one round trip (in a cluster its keys must share a slot).
    async fn query_pipeline<T: FromRedisValue + Send>(
        &self,
        pipe: &Pipeline,
    ) -> Result<T, StoreError> {
        self.health.admit()?;
        let call = async {
            let mut connection = self.backend.connection()?;
            pipe.query_async(&mut connection).await
        };
        self.finish(timeout(CALL_DEADLINE, call).await, Caller::Call)
    }

    /// A Lua script by hash; loaded first if Redis does not know it (after a restart).
    async fn invoke<T: FromRedisValue + Send>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.health.admit()?;
        let call = async {
            let mut connection = self.backend.connection()?;
            invocation.invoke_async(&mut connection).await
        };
        self.finish(timeout(CALL_DEADLINE, call).await, Caller::Call)
    }

    fn finish<T>(
        &self,
        outcome: Result<RedisResult<T>, tokio::time::error::Elapsed>,
        caller: Caller,
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
            self.health.mark_down(&cause, caller == Caller::Call);
        }
        Err(StoreError::Unavailable(cause))
    }
}

/// Whether Redis is known to be unreachable, and since when.
struct Health {
    kind: &'static str,
    fail_fast: bool,
    down: AtomicBool,
    epoch: Instant,
    down_since_ms: AtomicU64,
    /// Wakes the watcher when a call finds Redis unreachable.
    wake: Notify,
}

impl Health {
    fn new(kind: &'static str, fail_fast: bool) -> Self {
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

/// One connection handle, for one call.
enum Conn {
    Manager(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn send(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            // Direct call: no boxed future on the hot path.
            Self::Manager(manager) => manager.send_packed_command(cmd).await,
            Self::Cluster(cluster) => cluster.req_packed_command(cmd).await,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Manager(manager) => manager.req_packed_command(cmd),
            Self::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Manager(manager) => manager.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Manager(manager) => manager.get_db(),
            Self::Cluster(cluster) => cluster.get_db(),
        }
    }
}

/// Sentinel mode: the master the sentinels name, and the connection to it.
struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    master_name: String,
    /// Read on every call (a brief uncontended read lock), written on failover.
    master: RwLock<Option<Master>>,
    looking_up: AtomicBool,
}

struct Master {
    address: String,
    manager: ConnectionManager,
}

impl Sentinel {
    fn connection(&self) -> RedisResult<Conn> {
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
    fn look_up_soon(self: &Arc<Self>) {
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

/// Errors after which the sentinels should be asked again where the master is.
fn master_may_have_moved(error: &RedisError) -> bool {
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
fn connection_failed(error: &RedisError) -> bool {
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

/// Stops the watcher when the last clone of the store is dropped.
struct Watcher(AbortHandle);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pings every [`WATCH_INTERVAL`] while Redis answers, and every [`PROBE_MIN`]..
/// [`PROBE_MAX`] while it does not (each failed ping starts one reconnect attempt):
/// it makes the first connection at once, notices an outage and the recovery
/// without waiting for traffic, and asks the sentinels for the master now and then.
async fn watch(link: Link) {
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
        let mut outcome = link.command::<()>(&ping, Caller::Watcher).await;
        if outcome.is_err() {
            // The failure started a reconnect (or found a lost connection): the second
            // ping sees how that went instead of a stale error.
            outcome = link.command::<()>(&ping, Caller::Watcher).await;
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

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None)
        .set_number_of_retries(RECONNECT_RETRIES)
}

/// Nagle stays on (the redis default): with many requests in flight on one
/// connection it batches them into fewer packets (measured: ~15% less CPU per GET
/// than with `TCP_NODELAY`); a lone request still leaves at once.
fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_user_timeout(TCP_USER_TIMEOUT)
}

/// What a URL asks for.
enum Target {
    Standalone(ConnectionInfo),
    Cluster(Vec<ConnectionInfo>),
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        master_name: String,
        master: redis::RedisConnectionInfo,
    },
}

/// Parses a store URL. Errors never echo the URL (it may hold a password).
fn parse(url: &str) -> Result<Target, StoreError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| unavailable("invalid redis URL"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "redis+cluster" | "rediss+cluster" => {
            let node_scheme = if scheme.eq_ignore_ascii_case("rediss+cluster") {
                "rediss"
            } else {
                "redis"
            };
            let parts = MultiHost::split(rest, "invalid redis cluster URL")?;
            let nodes = parts
                .hosts
                .iter()
                .map(|host| node_info(&parts.node_url(node_scheme, host, "")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| unavailable("invalid redis cluster URL"))?;
            Ok(Target::Cluster(nodes))
        }
        "redis+sentinel" => {
            let invalid =
                "invalid redis sentinel URL (redis+sentinel://host:port,…/master_name[/db])";
            let parts = MultiHost::split(rest, invalid)?;
            let mut path = parts.path.trim_matches('/').split('/');
            let master_name = path
                .next()
                .filter(|name| !name.is_empty())
                .ok_or_else(|| unavailable(invalid))?;
            let db = path.next().unwrap_or("");
            let sentinels = parts
                .hosts
                .iter()
                .map(|host| match has_port(host) {
                    true => node_info(&format!("redis://{host}")),
                    false => node_info(&format!("redis://{host}:{SENTINEL_DEFAULT_PORT}")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| unavailable(invalid))?;
            let first = parts.hosts.first().copied().unwrap_or_default();
            let master = node_info(&parts.node_url("redis", first, db))
                .map_err(|_| unavailable(invalid))?
                .redis_settings()
                .clone();
            Ok(Target::Sentinel {
                sentinels,
                master_name: master_name.to_owned(),
                master,
            })
        }
        _ => node_info(url)
            .map(Target::Standalone)
            .map_err(|_| unavailable("invalid redis URL")),
    }
}

/// `host1:port1,host2:port2` with optional credentials, path and query.
struct MultiHost<'a> {
    userinfo: Option<&'a str>,
    hosts: Vec<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> MultiHost<'a> {
    fn split(rest: &'a str, invalid: &str) -> Result<Self, StoreError> {
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
        if hosts.iter().any(|host| host.is_empty()) {
            return Err(unavailable(invalid));
        }
        Ok(Self {
            userinfo,
            hosts,
            path,
            query,
        })
    }

    /// `scheme://[userinfo@]host[/db][?query]`, for redis' own URL parser.
    fn node_url(&self, scheme: &str, host: &str, db: &str) -> String {
        let mut url = format!("{scheme}://");
        if let Some(userinfo) = self.userinfo {
            url.push_str(userinfo);
            url.push('@');
        }
        url.push_str(host);
        if !db.is_empty() {
            url.push('/');
            url.push_str(db);
        }
        if let Some(query) = self.query {
            url.push('?');
            url.push_str(query);
        }
        url
    }
}

fn node_info(url: &str) -> RedisResult<ConnectionInfo> {
    let info = url.into_connection_info()?;
    if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
        // redis builds its rustls config from the process-wide crypto provider and
        // panics without one; `main` installs the same one, so this is a no-op there.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    Ok(info.set_tcp_settings(tcp_settings()))
}

/// Whether `host` ends in `:port` (`[::1]:26379` yes, `::1` or `name` no).
fn has_port(host: &str) -> bool {
    host.rsplit_once(':').is_some_and(|(name, port)| {
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && (!name.contains(':') || name.ends_with(']'))
    })
}

/// A cause for logs and errors: the kind of failure and the server's error code,
/// never the server's message (it can quote values) nor connection details.
fn describe(error: &RedisError) -> String {
    let cause = if error.is_timeout() {
        "timed out"
    } else if error.is_connection_refusal() {
        "connection refused"
    } else if error.is_connection_dropped() {
        "connection lost"
    } else if error.category().is_empty() {
        "server error"
    } else {
        error.category()
    };
    match error.code() {
        Some(code) => format!("{cause} ({code})"),
        None => cause.to_owned(),
    }
}

fn unavailable(cause: &str) -> StoreError {
    StoreError::Unavailable(cause.to_owned())
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn addresses(nodes: &[ConnectionInfo]) -> Vec<String> {
        nodes.iter().map(|node| node.addr().to_string()).collect()
    }

    #[test]
    fn a_cluster_url_lists_every_node_with_the_shared_credentials() {
        let Ok(Target::Cluster(nodes)) = parse("redis+cluster://u:p%40ss@h1:7000,h2:7001") else {
            panic!("not a cluster");
        };
        assert_eq!(addresses(&nodes), ["h1:7000", "h2:7001"]);
        for node in &nodes {
            assert_eq!(node.redis_settings().username(), Some("u"));
            assert_eq!(node.redis_settings().password(), Some("p@ss"));
        }
    }

    #[test]
    fn a_sentinel_url_names_sentinels_master_and_the_masters_credentials_and_db() {
        let Ok(Target::Sentinel {
            sentinels,
            master_name,
            master,
        }) = parse("redis+sentinel://:pw@s1:5000,s2,[::1]:5002/mymaster/3")
        else {
            panic!("not a sentinel URL");
        };
        assert_eq!(addresses(&sentinels), ["s1:5000", "s2:26379", "::1:5002"]);
        assert!(
            sentinels
                .iter()
                .all(|s| s.redis_settings().password().is_none())
        );
        assert_eq!(master_name, "mymaster");
        assert_eq!(master.password(), Some("pw"));
        assert_eq!(master.db(), 3);
    }

    #[test]
    fn a_plain_url_is_parsed_by_redis_itself() {
        let Ok(Target::Standalone(info)) = parse("rediss://u:pw@cache.example:6380/2") else {
            panic!("not standalone");
        };
        assert_eq!(info.addr().to_string(), "cache.example:6380");
        assert_eq!(info.redis_settings().db(), 2);
        assert_eq!(info.tcp_settings().user_timeout(), Some(TCP_USER_TIMEOUT));
    }

    #[test]
    fn ports_are_recognised_on_names_and_bracketed_ipv6_only() {
        assert!(has_port("host:1"));
        assert!(has_port("[::1]:26379"));
        assert!(!has_port("host"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("host:"));
    }

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
