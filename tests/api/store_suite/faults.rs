//! SPEC section 7 for the Redis store: Redis down, back, frozen and absent at
//! start; every call answers within two seconds and the store recovers by itself.

use std::time::{Duration, Instant};

use identity_service::store::{KeyValueStore, RedisStore, StoreError};

use super::{LONG, check_all, check_ping, check_take_is_single_use, prefix};
use crate::private_redis::{PrivateRedis, free_port};

/// The bound SPEC section 7 sets on an answer while Redis is down.
pub(super) const DOWN_BOUND: Duration = Duration::from_secs(2);

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

    eprintln!("redis down: the slowest of 39 failed calls took {slowest:?}");

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
    eprintln!("redis frozen: the slowest of 13 failed calls took {slowest:?}");

    server.signal("CONT");
    let recovered = wait_until_usable(&store, Duration::from_secs(5)).await;
    eprintln!("redis thawed; store usable again after {recovered:?}");
    check_take_is_single_use(&store, &prefix()).await;
}

/// Calls every operation once.
pub(super) async fn every_call(store: &RedisStore, p: &str) -> Vec<(&'static str, Outcome)> {
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
            timed(store.index_add(&key, "m", super::in_ms(LONG)))
                .await
                .map(),
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
        (
            "delete_indexed",
            timed(store.delete_indexed(&key, "")).await.map(),
        ),
        ("ping", timed(store.ping()).await.map()),
    ]
}

pub(super) struct Outcome {
    pub(super) elapsed: Duration,
    pub(super) result: Result<(), StoreError>,
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
pub(super) async fn wait_until_usable<S: KeyValueStore>(store: &S, limit: Duration) -> Duration {
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
