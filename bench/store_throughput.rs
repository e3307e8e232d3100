//! GET throughput of the Redis store over its one multiplexed connection: 64 tasks
//! read one 300-byte value for 3 s on a 2-thread runtime, and the rate is printed.
//!
//! Run it (release mode; Redis from `REDIS_URL`, default redis://127.0.0.1:6379):
//!
//! ```sh
//! cargo bench --bench store_throughput
//! ```
//!
//! Under `cargo test --all-targets` it only prints this note: it is a measurement,
//! not a check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use identity_service::store::{KeyValueStore, RedisStore};

const TASKS: usize = 64;
const RUN: Duration = Duration::from_secs(3);
const LONG: Duration = Duration::from_secs(60);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!(
            "store_throughput: a measurement; run it with `cargo bench --bench store_throughput`"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(measure());
}

async fn measure() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let store = RedisStore::connect(&url).unwrap();
    let key = format!("bench:{{{}}}:session", std::process::id());
    let started = Instant::now();
    while store.set(&key, &[7u8; 300], LONG).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "Redis unreachable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let _ = store.delete(&[key]).await;
    let rate = total as f64 / RUN.as_secs_f64();
    eprintln!("single connection, {TASKS} tasks, {RUN:?}: {total} GETs = {rate:.0} GET/s");
}
