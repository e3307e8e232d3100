//! What only Redis can show about the back-channel indexes: they are trimmed on
//! every write (not just filtered on read), expire with their latest member, are
//! converted from the plain sets earlier versions wrote, and ending all the
//! sessions of an index costs two commands however many sessions there are.

use std::collections::BTreeMap;
use std::time::Duration;

use identity_service::store::{KeyValueStore, RedisStore};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use super::{LONG, in_ms, prefix, sorted};
use crate::private_redis::{PrivateRedis, redis_url};

async fn raw(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_index_is_trimmed_on_write_and_expires_with_its_latest_member() {
    let store = RedisStore::connect(&redis_url()).unwrap();
    let mut redis = raw(&redis_url()).await;
    let index = format!("{}sub", prefix());
    for n in 0..10 {
        store
            .index_add(
                &index,
                &format!("idle{n}"),
                in_ms(Duration::from_millis(200)),
            )
            .await
            .unwrap();
    }
    let latest = in_ms(Duration::from_secs(30));
    store.index_add(&index, "active", latest).await.unwrap();
    store
        .index_add(&index, "shorter", in_ms(Duration::from_secs(20)))
        .await
        .unwrap();
    let size: u64 = redis.zcard(&index).await.unwrap();
    assert_eq!(size, 12);
    let expire_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&index)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(expire_at, latest, "the index ends with its latest member");

    tokio::time::sleep(Duration::from_millis(400)).await;
    store.index_add(&index, "new", in_ms(LONG)).await.unwrap();
    let size: u64 = redis.zcard(&index).await.unwrap();
    assert_eq!(size, 3, "the ten idle members were trimmed by the write");
}

#[tokio::test]
async fn an_index_left_as_a_plain_set_is_converted_and_kept() {
    let store = RedisStore::connect(&redis_url()).unwrap();
    let mut redis = raw(&redis_url()).await;
    let index = format!("{}sub", prefix());
    let _: () = redis.sadd(&index, &["old1", "old2"]).await.unwrap();
    let _: () = redis.pexpire(&index, 60_000).await.unwrap();
    assert_eq!(
        sorted(store.index_members(&index).await.unwrap()),
        ["old1", "old2"]
    );

    store.index_add(&index, "new", in_ms(LONG)).await.unwrap();
    let kind: String = redis::cmd("TYPE")
        .arg(&index)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(kind, "zset");
    assert_eq!(
        sorted(store.index_members(&index).await.unwrap()),
        ["new", "old1", "old2"]
    );
    store.index_remove(&index, "old1").await.unwrap();
    assert_eq!(store.delete_indexed(&index, "").await.unwrap(), 0);
}

/// Calls per command since the server started (`INFO commandstats`).
async fn command_calls(redis: &mut MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter_map(|line| {
            let (name, stats) = line.split_once(':')?;
            let calls = stats.strip_prefix("calls=")?.split(',').next()?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn ending_fifty_sessions_of_a_subject_takes_two_commands() {
    let Some(server) = PrivateRedis::start_free() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).unwrap();
    let mut redis = raw(&server.url()).await;
    let p = prefix();
    let index = format!("{p}sub");
    for n in 0..50 {
        let session = format!("{p}session{n}");
        store.set(&session, b"sealed", LONG).await.unwrap();
        store
            .index_add(&index, &session, in_ms(LONG))
            .await
            .unwrap();
    }
    // Loads the script, so the count below is of the steady state.
    assert_eq!(store.index_members(&index).await.unwrap().len(), 50);

    let before = command_calls(&mut redis).await;
    assert_eq!(store.delete_indexed(&index, "").await.unwrap(), 50);
    let after = command_calls(&mut redis).await;
    let mut used: BTreeMap<String, u64> = after
        .into_iter()
        .filter(|(name, _)| name != "info" && name != "ping")
        .map(|(name, calls)| {
            let earlier = before.get(&name).copied().unwrap_or(0);
            (name, calls - earlier)
        })
        .filter(|(_, calls)| *calls > 0)
        .collect();
    assert_eq!(used.remove("del"), Some(1), "one DEL for all fifty");
    assert_eq!(
        used.remove("evalsha"),
        Some(1),
        "one script reads the index"
    );
    // Counted too: the commands run inside that one script.
    let in_script = BTreeMap::from([
        ("type".to_owned(), 1),
        ("zrange".to_owned(), 1),
        ("zremrangebyscore".to_owned(), 1),
    ]);
    assert_eq!(used, in_script, "nothing else");
    let left: u64 = redis::cmd("DBSIZE").query_async(&mut redis).await.unwrap();
    assert_eq!(left, 0);
}
