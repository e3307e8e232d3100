//! The store contract, one suite run against every store: memory, Redis (REDIS_URL,
//! default redis://127.0.0.1:6379), a 3-node Redis Cluster and a Sentinel setup
//! (private servers, skipped with a note when the binaries are missing), plus the
//! SPEC section 7 faults: Redis down, back, and absent at start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use identity_service::store::{AnyStore, KeyValueStore, MemoryStore, RedisStore, StoreError};

// ---------------------------------------------------------------------------
// The suite: every check takes a store and a key prefix of its own.
// ---------------------------------------------------------------------------

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);
/// Comfortably past SHORT.
const PAST_SHORT: Duration = Duration::from_millis(700);

async fn check_get_set_and_expiry<S: KeyValueStore>(store: &S, prefix: &str) {
    let key = format!("{prefix}value");
    assert_eq!(store.get(&key).await.unwrap(), None);

    let bytes: Vec<u8> = (0..=255).collect();
    store.set(&key, &bytes, LONG).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(bytes));

    store.set(&key, b"second", LONG).await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );

    store.set(&key, b"", LONG).await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        Some(Vec::new()),
        "an empty value is a value"
    );

    let short = format!("{prefix}short");
    store.set(&short, b"soon gone", SHORT).await.unwrap();
    assert!(store.get(&short).await.unwrap().is_some());
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get(&short).await.unwrap(), None);

    let zero = format!("{prefix}zero-ttl");
    store.set(&zero, b"x", Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store.get(&zero).await.unwrap(),
        None,
        "a zero TTL is the shortest one"
    );
}

async fn check_replace_only_if_present<S: KeyValueStore>(store: &S, prefix: &str) {
    let key = format!("{prefix}replace");
    assert!(!store.replace(&key, b"new", LONG).await.unwrap());
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "replace must not create"
    );

    store.set(&key, b"old", LONG).await.unwrap();
    assert!(store.replace(&key, b"new", LONG).await.unwrap());
    assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&b"new"[..]));

    assert!(store.replace(&key, b"newer", SHORT).await.unwrap());
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "replace sets the new TTL"
    );
    assert!(
        !store.replace(&key, b"again", LONG).await.unwrap(),
        "an expired key is absent"
    );
}

async fn check_set_if_absent<S: KeyValueStore>(store: &S, prefix: &str) {
    let key = format!("{prefix}nx");
    assert!(store.set_if_absent(&key, b"first", SHORT).await.unwrap());
    assert!(!store.set_if_absent(&key, b"second", LONG).await.unwrap());
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );

    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        store.set_if_absent(&key, b"third", LONG).await.unwrap(),
        "free again once expired"
    );
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"third"[..])
    );
}

async fn check_take_is_single_use<S: KeyValueStore>(store: &S, prefix: &str) {
    let key = format!("{prefix}take");
    assert_eq!(store.take(&key).await.unwrap(), None);

    store.set(&key, b"once", LONG).await.unwrap();
    let (a, b, c, d) = tokio::join!(
        store.take(&key),
        store.take(&key),
        store.take(&key),
        store.take(&key)
    );
    let taken: Vec<Vec<u8>> = [a, b, c, d]
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(
        taken,
        vec![b"once".to_vec()],
        "exactly one concurrent take wins"
    );
    assert_eq!(store.get(&key).await.unwrap(), None);

    store.set(&key, b"expiring", SHORT).await.unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        store.take(&key).await.unwrap(),
        None,
        "an expired value cannot be taken"
    );
}

async fn check_delete<S: KeyValueStore>(store: &S, prefix: &str) {
    let a = format!("{prefix}a");
    let b = format!("{prefix}b");
    let index = format!("{prefix}index");
    store.set(&a, b"1", LONG).await.unwrap();
    store.set(&b, b"2", LONG).await.unwrap();
    store.index_add(&index, "member", LONG).await.unwrap();

    let removed = store
        .delete(&[
            a.clone(),
            b.clone(),
            index.clone(),
            format!("{prefix}never"),
        ])
        .await
        .unwrap();
    assert_eq!(
        removed, 3,
        "values and indexes alike; absent keys do not count"
    );
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert_eq!(store.get(&b).await.unwrap(), None);
    assert!(store.index_members(&index).await.unwrap().is_empty());

    assert_eq!(store.delete(std::slice::from_ref(&a)).await.unwrap(), 0);
    assert_eq!(store.delete(&[]).await.unwrap(), 0);
}

async fn check_index<S: KeyValueStore>(store: &S, prefix: &str) {
    let index = format!("{prefix}sid");
    assert!(store.index_members(&index).await.unwrap().is_empty());

    store.index_add(&index, "s1", LONG).await.unwrap();
    store.index_add(&index, "s2", LONG).await.unwrap();
    store.index_add(&index, "s1", LONG).await.unwrap();
    assert_eq!(
        sorted(store.index_members(&index).await.unwrap()),
        ["s1", "s2"]
    );

    store.index_remove(&index, "s1").await.unwrap();
    store.index_remove(&index, "never-added").await.unwrap();
    assert_eq!(store.index_members(&index).await.unwrap(), ["s2"]);
    store.index_remove(&index, "s2").await.unwrap();
    assert!(store.index_members(&index).await.unwrap().is_empty());
    assert_eq!(
        store.delete(std::slice::from_ref(&index)).await.unwrap(),
        0,
        "an emptied index is gone"
    );
    store
        .index_remove(&format!("{prefix}no-index"), "x")
        .await
        .unwrap();

    let expiring = format!("{prefix}sub");
    store.index_add(&expiring, "s1", SHORT).await.unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        store.index_members(&expiring).await.unwrap().is_empty(),
        "the index expires"
    );
}

async fn check_index_expiry_is_only_ever_extended<S: KeyValueStore>(store: &S, prefix: &str) {
    let index = format!("{prefix}sub");
    let ms = Duration::from_millis;
    store
        .index_add(&index, "long-lived", ms(1000))
        .await
        .unwrap();
    store
        .index_add(&index, "short-lived", ms(100))
        .await
        .unwrap();
    tokio::time::sleep(ms(400)).await;
    assert_eq!(
        sorted(store.index_members(&index).await.unwrap()),
        ["long-lived", "short-lived"],
        "a shorter TTL must not cut the index short"
    );
    store.index_add(&index, "later", ms(2000)).await.unwrap();
    tokio::time::sleep(ms(1000)).await;
    assert_eq!(
        store.index_members(&index).await.unwrap().len(),
        3,
        "a longer TTL extends it"
    );
    tokio::time::sleep(ms(1300)).await;
    assert!(store.index_members(&index).await.unwrap().is_empty());
}

async fn check_lock_renew_and_release<S: KeyValueStore>(store: &S, prefix: &str) {
    let lock = format!("{prefix}lock");
    assert!(
        !store.renew_if_value(&lock, b"me", LONG).await.unwrap(),
        "no lock, nothing to renew"
    );
    assert!(!store.delete_if_value(&lock, b"me").await.unwrap());

    assert!(
        store
            .set_if_absent(&lock, b"me", Duration::from_millis(800))
            .await
            .unwrap()
    );
    assert!(!store.set_if_absent(&lock, b"you", LONG).await.unwrap());
    assert!(
        !store.renew_if_value(&lock, b"you", LONG).await.unwrap(),
        "only the holder renews"
    );
    assert!(
        store
            .renew_if_value(&lock, b"me", Duration::from_secs(3))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        store.get(&lock).await.unwrap().as_deref(),
        Some(&b"me"[..]),
        "renewal kept it"
    );

    assert!(
        !store.delete_if_value(&lock, b"you").await.unwrap(),
        "only the holder releases"
    );
    assert!(store.get(&lock).await.unwrap().is_some());
    assert!(store.delete_if_value(&lock, b"me").await.unwrap());
    assert_eq!(store.get(&lock).await.unwrap(), None);
    assert!(!store.renew_if_value(&lock, b"me", LONG).await.unwrap());

    assert!(store.set_if_absent(&lock, b"me", SHORT).await.unwrap());
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        !store.renew_if_value(&lock, b"me", LONG).await.unwrap(),
        "an expired lock is gone"
    );
    assert!(!store.delete_if_value(&lock, b"me").await.unwrap());
}

async fn check_ping<S: KeyValueStore>(store: &S, _prefix: &str) {
    store.ping().await.unwrap();
}

/// Runs every check against one store, each with its own prefix (and hash tag).
async fn check_all<S: KeyValueStore>(store: &S) {
    check_get_set_and_expiry(store, &prefix()).await;
    check_replace_only_if_present(store, &prefix()).await;
    check_set_if_absent(store, &prefix()).await;
    check_take_is_single_use(store, &prefix()).await;
    check_delete(store, &prefix()).await;
    check_index(store, &prefix()).await;
    check_index_expiry_is_only_ever_extended(store, &prefix()).await;
    check_lock_renew_and_release(store, &prefix()).await;
    check_ping(store, &prefix()).await;
}

/// One `#[tokio::test]` per check and store: `memory::<name>` and `redis::<name>`.
macro_rules! suite {
    ($($name:ident => $check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$check(&identity_service::store::AnyStore::memory(), &super::prefix()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let store = identity_service::store::RedisStore::connect(&super::redis_url()).unwrap();
                    super::$check(&store, &super::prefix()).await;
                }
            )*
        }
    };
}

suite! {
    values_are_stored_read_and_expire => check_get_set_and_expiry,
    replace_only_touches_existing_keys => check_replace_only_if_present,
    set_if_absent_stores_only_once => check_set_if_absent,
    take_is_single_use => check_take_is_single_use,
    delete_counts_what_existed => check_delete,
    index_adds_lists_removes_and_expires => check_index,
    index_expiry_is_only_ever_extended => check_index_expiry_is_only_ever_extended,
    locks_are_renewed_and_released_only_by_their_holder => check_lock_renew_and_release,
    ping_answers => check_ping,
}

#[tokio::test]
async fn debug_output_shows_no_values() {
    let store = AnyStore::memory();
    store.set("k", b"session-secret", LONG).await.unwrap();
    let shown = format!("{store:?}");
    assert!(
        !shown.contains("session-secret") && !shown.contains("115, 101"),
        "{shown}"
    );
}

#[tokio::test]
async fn memory_store_clones_share_their_data() {
    let store = MemoryStore::new();
    let key = format!("{}k", prefix());
    store.clone().set(&key, b"v", LONG).await.unwrap();
    assert!(store.get(&key).await.unwrap().is_some());
}

#[tokio::test]
async fn value_commands_on_an_index_fail_in_both_stores() {
    for store in [AnyStore::memory(), AnyStore::redis(&redis_url()).unwrap()] {
        let index = format!("{}index", prefix());
        store.index_add(&index, "m", LONG).await.unwrap();
        assert!(matches!(
            store.get(&index).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.take(&index).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(
            store.index_members(&index).await.unwrap(),
            ["m"],
            "the index survives"
        );
    }
}

// ---------------------------------------------------------------------------
// URLs and construction.
// ---------------------------------------------------------------------------

#[test]
fn connecting_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    assert!(RedisStore::connect("redis://127.0.0.1:6379").is_err());
}

#[tokio::test]
async fn malformed_urls_are_refused_without_echoing_them() {
    for url in [
        "redis://user:s3cret-pw@127.0.0.1:notaport",
        "http://user:s3cret-pw@127.0.0.1:6379",
        "no scheme s3cret-pw",
        "redis+sentinel://:s3cret-pw@127.0.0.1:26379",
        "redis+sentinel://:s3cret-pw@127.0.0.1:26379,,127.0.0.2/mymaster",
        "redis+cluster://:s3cret-pw@",
    ] {
        let error = RedisStore::connect(url).unwrap_err();
        let StoreError::Unavailable(message) = &error;
        assert!(!message.contains("s3cret"), "{url} -> {message}");
        assert!(!error.to_string().contains("s3cret"));
    }
}

#[tokio::test]
async fn every_url_form_is_accepted_without_contacting_redis() {
    for url in [
        "redis://127.0.0.1:1",
        "redis://user:pw@127.0.0.1:1/3",
        "rediss://user:pw@localhost:1",
        "redis+cluster://127.0.0.1:1,127.0.0.1:2",
        "rediss+cluster://:pw@localhost:1",
        "redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster",
        "redis+sentinel://user:pw@localhost/mymaster/2",
    ] {
        let started = Instant::now();
        let store = RedisStore::connect(url).unwrap_or_else(|error| panic!("{url}: {error}"));
        assert!(started.elapsed() < Duration::from_millis(100), "{url}");
        assert!(!format!("{store:?}").contains("pw"));
    }
}

// ---------------------------------------------------------------------------
// SPEC section 7: Redis down, back, and absent at start.
// ---------------------------------------------------------------------------

/// The bound SPEC section 7 sets on an answer while Redis is down.
const DOWN_BOUND: Duration = Duration::from_secs(2);

#[tokio::test]
async fn redis_down_fails_every_call_within_two_seconds_and_recovers_by_itself() {
    let Some(mut server) = PrivateRedis::start(free_port(), &[]) else {
        return;
    };
    let store = RedisStore::connect(&server.url()).unwrap();
    let p = prefix();
    let key = format!("{p}k");
    store.set(&key, b"v", LONG).await.unwrap();
    assert!(store.renew_if_value(&key, b"v", LONG).await.unwrap());

    server.stop();
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        for (name, outcome) in every_call(&store, &p).await {
            slowest = slowest.max(outcome.elapsed);
            assert!(
                outcome.elapsed < DOWN_BOUND,
                "round {round}: {name} took {:?}",
                outcome.elapsed
            );
            assert!(
                matches!(outcome.result, Err(StoreError::Unavailable(_))),
                "round {round}: {name} gave {:?}",
                outcome.result
            );
        }
    }

    eprintln!("redis down: the slowest of 36 failed calls took {slowest:?}");

    server.restart();
    let recovered = wait_until_usable(&store, Duration::from_secs(5)).await;
    eprintln!("redis back; store usable again after {recovered:?}");
    // Redis kept nothing; the scripts were flushed too and are reloaded on demand.
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert!(store.set_if_absent(&key, b"v2", LONG).await.unwrap());
    assert!(store.renew_if_value(&key, b"v2", LONG).await.unwrap());
    assert!(store.delete_if_value(&key, b"v2").await.unwrap());
    check_all(&store).await;
}

#[tokio::test]
async fn connect_returns_at_once_with_nothing_listening_and_works_once_redis_starts() {
    let port = free_port();
    let started = Instant::now();
    let store = RedisStore::connect(&format!("redis://127.0.0.1:{port}")).unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));

    for _ in 0..3 {
        let started = Instant::now();
        let result = store.get("test:{absent}:k").await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            started.elapsed() < DOWN_BOUND,
            "took {:?}",
            started.elapsed()
        );
    }

    let Some(_server) = PrivateRedis::start(port, &[]) else {
        return;
    };
    let recovered = wait_until_usable(&store, Duration::from_secs(5)).await;
    eprintln!("redis started; store usable after {recovered:?}");
    check_ping(&store, "").await;
}

#[tokio::test]
async fn a_frozen_redis_fails_calls_within_two_seconds_and_recovers_when_it_thaws() {
    let Some(server) = PrivateRedis::start(free_port(), &[]) else {
        return;
    };
    let store = RedisStore::connect(&server.url()).unwrap();
    wait_until_usable(&store, Duration::from_secs(5)).await;

    // SIGSTOP: the connection stays open but nothing answers (like a hung host).
    server.signal("STOP");
    let mut slowest = Duration::ZERO;
    for (name, outcome) in every_call(&store, &prefix()).await {
        slowest = slowest.max(outcome.elapsed);
        assert!(
            outcome.elapsed < DOWN_BOUND,
            "{name} took {:?}",
            outcome.elapsed
        );
        assert!(
            outcome.result.is_err(),
            "{name} succeeded on a frozen Redis"
        );
    }
    eprintln!("redis frozen: the slowest of 12 failed calls took {slowest:?}");

    server.signal("CONT");
    let recovered = wait_until_usable(&store, Duration::from_secs(5)).await;
    eprintln!("redis thawed; store usable again after {recovered:?}");
    check_take_is_single_use(&store, &prefix()).await;
}

/// Calls every operation once.
async fn every_call(store: &RedisStore, p: &str) -> Vec<(&'static str, Outcome)> {
    let key = format!("{p}k");
    let keys = [key.clone()];
    vec![
        ("get", timed(store.get(&key)).await.map()),
        ("set", timed(store.set(&key, b"v", LONG)).await.map()),
        (
            "replace",
            timed(store.replace(&key, b"v", LONG)).await.map(),
        ),
        (
            "set_if_absent",
            timed(store.set_if_absent(&key, b"v", LONG)).await.map(),
        ),
        ("take", timed(store.take(&key)).await.map()),
        ("delete", timed(store.delete(&keys)).await.map()),
        (
            "index_add",
            timed(store.index_add(&key, "m", LONG)).await.map(),
        ),
        (
            "index_members",
            timed(store.index_members(&key)).await.map(),
        ),
        (
            "index_remove",
            timed(store.index_remove(&key, "m")).await.map(),
        ),
        (
            "renew_if_value",
            timed(store.renew_if_value(&key, b"v", LONG)).await.map(),
        ),
        (
            "delete_if_value",
            timed(store.delete_if_value(&key, b"v")).await.map(),
        ),
        ("ping", timed(store.ping()).await.map()),
    ]
}

struct Outcome {
    elapsed: Duration,
    result: Result<(), StoreError>,
}

struct Timed<T> {
    elapsed: Duration,
    result: Result<T, StoreError>,
}

impl<T> Timed<T> {
    fn map(self) -> Outcome {
        Outcome {
            elapsed: self.elapsed,
            result: self.result.map(|_| ()),
        }
    }
}

async fn timed<T>(call: impl Future<Output = Result<T, StoreError>>) -> Timed<T> {
    let started = Instant::now();
    let result = call.await;
    Timed {
        elapsed: started.elapsed(),
        result,
    }
}

/// Polls until a set and a get succeed; panics after `limit`.
async fn wait_until_usable<S: KeyValueStore>(store: &S, limit: Duration) -> Duration {
    let started = Instant::now();
    let key = format!("{}probe", prefix());
    loop {
        if store.set(&key, b"1", LONG).await.is_ok() && store.get(&key).await.is_ok() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "store not usable after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// Redis Cluster and Sentinel, with private servers.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_redis_cluster_passes_the_suite_and_survives_a_full_restart() {
    let ports: Vec<u16> = (0..3).map(|_| free_cluster_port()).collect();
    let cluster_args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "2000",
    ];
    let mut nodes = Vec::new();
    for port in &ports {
        let Some(node) = PrivateRedis::start(*port, &cluster_args) else {
            return;
        };
        nodes.push(node);
    }
    let addresses: Vec<String> = ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    let created = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let Ok(created) = created else {
        eprintln!("note: redis-cli not found; cluster test skipped");
        return;
    };
    assert!(created.success(), "redis-cli --cluster create failed");
    for port in &ports {
        wait_for_reply(
            *port,
            b"CLUSTER INFO\r\n",
            "cluster_state:ok",
            Duration::from_secs(10),
        );
    }

    let store = RedisStore::connect(&format!("redis+cluster://{}", addresses.join(","))).unwrap();
    wait_until_usable(&store, Duration::from_secs(5)).await;
    check_all(&store).await;
    // A multi-key DEL across slots also works (the client splits it by slot).
    let spread: Vec<String> = (0..20)
        .map(|n| format!("test:cluster-spread:{n}:{}", prefix()))
        .collect();
    for key in &spread {
        store.set(key, b"v", LONG).await.unwrap();
    }
    assert_eq!(store.delete(&spread).await.unwrap(), 20);

    for node in &mut nodes {
        node.stop();
    }
    let p = prefix();
    for (name, outcome) in every_call(&store, &p).await {
        eprintln!("cluster down: {name} failed after {:?}", outcome.elapsed);
        assert!(
            outcome.elapsed < DOWN_BOUND,
            "{name} took {:?}",
            outcome.elapsed
        );
        assert!(
            outcome.result.is_err(),
            "{name} succeeded with the cluster down"
        );
    }
    for node in &mut nodes {
        node.restart();
    }
    // The nodes kept their cluster configuration (nodes.conf); until they agree
    // again Redis itself answers CLUSTERDOWN.
    for port in &ports {
        wait_for_reply(
            *port,
            b"CLUSTER INFO\r\n",
            "cluster_state:ok",
            Duration::from_secs(15),
        );
    }
    let recovered = wait_until_usable(&store, Duration::from_secs(15)).await;
    eprintln!("cluster back; store usable again after {recovered:?}");
    check_lock_renew_and_release(&store, &prefix()).await;
}

#[tokio::test]
async fn sentinel_mode_passes_the_suite_and_follows_a_failover() {
    let master_port = free_port();
    let replica_port = free_port();
    let sentinel_port = free_port();
    let Some(mut master) = PrivateRedis::start(master_port, &[]) else {
        return;
    };
    let replica_of = master_port.to_string();
    let Some(_replica) =
        PrivateRedis::start(replica_port, &["--replicaof", "127.0.0.1", &replica_of])
    else {
        return;
    };
    let sentinel_conf = master.dir.join("sentinel.conf");
    std::fs::write(
        &sentinel_conf,
        format!(
            "port {sentinel_port}\nsentinel monitor mymaster 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n"
        ),
    )
    .unwrap();
    let Some(_sentinel) = PrivateRedis::spawn_with(sentinel_port, move |command| {
        command.arg(&sentinel_conf).arg("--sentinel");
    }) else {
        return;
    };
    wait_for_reply(
        replica_port,
        b"INFO replication\r\n",
        "master_link_status:up",
        Duration::from_secs(10),
    );
    wait_for_reply(
        sentinel_port,
        b"SENTINEL REPLICAS mymaster\r\n",
        &format!("{replica_port}"),
        Duration::from_secs(15),
    );

    let store = RedisStore::connect(&format!(
        "redis+sentinel://127.0.0.1:{sentinel_port}/mymaster"
    ))
    .unwrap();
    wait_until_usable(&store, Duration::from_secs(5)).await;
    check_all(&store).await;

    master.stop();
    let started = Instant::now();
    for (name, outcome) in every_call(&store, &prefix()).await {
        assert!(
            outcome.elapsed < DOWN_BOUND,
            "{name} took {:?}",
            outcome.elapsed
        );
    }
    let recovered = wait_until_usable(&store, Duration::from_secs(30)).await;
    eprintln!(
        "sentinel failover followed; store usable again {:?} after the master died",
        started.elapsed()
    );
    let _ = recovered;
    wait_for_reply(replica_port, b"ROLE\r\n", "master", Duration::from_secs(1));
    check_lock_renew_and_release(&store, &prefix()).await;
}

// ---------------------------------------------------------------------------
// Throughput (run with: cargo test --release --test api store_suite::redis_get_throughput -- --ignored --nocapture)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check; run it in release mode"]
async fn redis_get_throughput() {
    const TASKS: usize = 64;
    const RUN: Duration = Duration::from_secs(3);
    let store = RedisStore::connect(&redis_url()).unwrap();
    let key = format!("{}session", prefix());
    store.set(&key, &[7u8; 300], LONG).await.unwrap();
    let done = Instant::now() + RUN;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let mut count = 0u64;
                while Instant::now() < done {
                    assert!(store.get(&key).await.unwrap().is_some());
                    count += 1;
                }
                count
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let rate = total as f64 / RUN.as_secs_f64();
    eprintln!("single connection, {TASKS} tasks, {RUN:?}: {total} GETs = {rate:.0} GET/s");
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `test:{<random>}:`: unique per call, and the hash tag keeps a check's keys in
/// one cluster slot.
fn prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    format!("test:{{{:016x}}}:", hasher.finish())
}

fn sorted(mut members: Vec<String>) -> Vec<String> {
    members.sort();
    members
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = 20_000 + (std::process::id() as u64 % 500) * 20;
    loop {
        let port = u16::try_from(start + NEXT.fetch_add(1, Ordering::Relaxed) % 10_000).unwrap();
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

/// Sends one inline command until the reply contains `expected`.
fn wait_for_reply(port: u16, command: &[u8], expected: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        if let Ok(reply) = send_inline(port, command)
            && reply.contains(expected)
        {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "port {port}: no {expected:?} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn send_inline(port: u16, command: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(command)?;
    let mut buffer = vec![0; 64 * 1024];
    let read = stream.read(&mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer[..read]).into_owned())
}

/// A private `redis-server` on `port` in a scratch directory; killed (and the
/// directory removed) on drop.
struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    configure: Box<dyn Fn(&mut Command) + Send>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// `None` (after a note) if `redis-server` is not installed.
    fn start(port: u16, args: &[&str]) -> Option<Self> {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        Self::spawn_with(port, move |command| {
            command
                .args([
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(&args);
        })
    }

    fn spawn_with(port: u16, configure: impl Fn(&mut Command) + Send + 'static) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("store-suite-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port,
            dir,
            configure: Box::new(configure),
            child: None,
        };
        if !server.spawn() {
            eprintln!("note: redis-server not found; test skipped");
            return None;
        }
        Some(server)
    }

    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        (self.configure)(&mut command);
        command
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let Ok(child) = command.spawn() else {
            return false;
        };
        self.child = Some(child);
        wait_for_reply(self.port, b"PING\r\n", "PONG", Duration::from_secs(5));
        true
    }

    /// Sends a signal (`STOP`, `CONT`) to the server.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        assert!(self.spawn());
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
