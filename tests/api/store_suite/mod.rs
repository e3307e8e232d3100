//! The store contract, one suite run against every store: memory, the shared Redis
//! (REDIS_URL, default redis://127.0.0.1:6379), and in [`topologies`] a 3-node Redis
//! Cluster and a Sentinel setup (private servers). [`faults`] holds the SPEC section 7
//! faults (Redis down, back, frozen, absent at start) and [`indexes`] what only Redis
//! can show about the back-channel indexes (their size, their expiry, round trips).
//! Tests that need a private `redis-server` are skipped with a note without one.

mod faults;
mod indexes;
mod topologies;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use identity_service::store::{AnyStore, KeyValueStore, MemoryStore, RedisStore, StoreError};

use crate::private_redis::redis_url;

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
    store
        .index_add(&index, "member", in_ms(LONG))
        .await
        .unwrap();

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

/// Unix milliseconds `after` from now: a member's expiry.
fn in_ms(after: Duration) -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from((now + after).as_millis()).unwrap()
}

async fn check_index<S: KeyValueStore>(store: &S, prefix: &str) {
    let index = format!("{prefix}sid");
    assert!(store.index_members(&index).await.unwrap().is_empty());

    store.index_add(&index, "s1", in_ms(LONG)).await.unwrap();
    store.index_add(&index, "s2", in_ms(LONG)).await.unwrap();
    store.index_add(&index, "s1", in_ms(LONG)).await.unwrap();
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
    store
        .index_add(&expiring, "s1", in_ms(SHORT))
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        store.index_members(&expiring).await.unwrap().is_empty(),
        "the index expires"
    );
}

async fn check_index_lives_as_long_as_its_latest_member<S: KeyValueStore>(store: &S, prefix: &str) {
    let index = format!("{prefix}sub");
    let ms = Duration::from_millis;
    store
        .index_add(&index, "long-lived", in_ms(ms(1000)))
        .await
        .unwrap();
    store
        .index_add(&index, "short-lived", in_ms(ms(100)))
        .await
        .unwrap();
    tokio::time::sleep(ms(400)).await;
    assert_eq!(
        store.index_members(&index).await.unwrap(),
        ["long-lived"],
        "a member leaves at its own expiry; a shorter one must not cut the index short"
    );
    store
        .index_add(&index, "later", in_ms(ms(2000)))
        .await
        .unwrap();
    tokio::time::sleep(ms(1000)).await;
    assert_eq!(
        store.index_members(&index).await.unwrap(),
        ["later"],
        "a later member extends the index"
    );
    tokio::time::sleep(ms(1300)).await;
    assert!(store.index_members(&index).await.unwrap().is_empty());
    assert_eq!(
        store.delete(std::slice::from_ref(&index)).await.unwrap(),
        0,
        "the index expired with its latest member"
    );
}

async fn check_expired_members_leave_the_index_on_write<S: KeyValueStore>(store: &S, prefix: &str) {
    let index = format!("{prefix}sub");
    let ms = Duration::from_millis;
    store
        .index_add(&index, "idle", in_ms(ms(200)))
        .await
        .unwrap();
    store
        .index_add(&index, "active", in_ms(LONG))
        .await
        .unwrap();
    // Already over: listed by no one, and gone at once.
    store
        .index_add(&index, "ended", in_ms(Duration::ZERO) - 1)
        .await
        .unwrap();
    assert_eq!(
        sorted(store.index_members(&index).await.unwrap()),
        ["active", "idle"]
    );
    tokio::time::sleep(ms(400)).await;
    store.index_add(&index, "new", in_ms(LONG)).await.unwrap();
    assert_eq!(
        sorted(store.index_members(&index).await.unwrap()),
        ["active", "new"]
    );
}

async fn check_delete_indexed<S: KeyValueStore>(store: &S, prefix: &str) {
    let index = format!("{prefix}sub");
    let keys = format!("{prefix}session:");
    let sessions: Vec<String> = (0..25).map(|n| format!("{keys}s{n}")).collect();
    for (n, session) in sessions.iter().enumerate() {
        store.set(session, b"sealed", LONG).await.unwrap();
        // Members name their key after the key prefix; an earlier version listed whole keys.
        let member = if n % 5 == 0 {
            session.clone()
        } else {
            format!("s{n}")
        };
        store.index_add(&index, &member, in_ms(LONG)).await.unwrap();
    }
    // A member whose session already ended: listed, not counted.
    store.index_add(&index, "gone", in_ms(LONG)).await.unwrap();
    let other = format!("{prefix}other");
    store.set(&other, b"sealed", LONG).await.unwrap();

    assert_eq!(store.delete_indexed(&index, &keys).await.unwrap(), 25);
    for session in &sessions {
        assert_eq!(store.get(session).await.unwrap(), None, "{session}");
    }
    assert!(store.index_members(&index).await.unwrap().is_empty());
    assert_eq!(
        store.delete(std::slice::from_ref(&index)).await.unwrap(),
        0,
        "the index is gone too"
    );
    assert!(store.get(&other).await.unwrap().is_some(), "others stay");
    assert_eq!(store.delete_indexed(&index, &keys).await.unwrap(), 0);
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

/// SPEC 11: the listing hash beside an index, both under one hash tag of their own (the
/// prefix's tag is left out, as with a `key_prefix` without one).
async fn check_listing<S: KeyValueStore>(store: &S, prefix: &str) {
    let index = format!(
        "{}sub-index:{{{}}}",
        prefix.replace(['{', '}'], ""),
        prefix.len()
    );
    let listing = format!("{index}:list");
    assert!(
        store
            .listing_entries(&index, &listing)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.listing_touch(&listing, "s1", b"9").await.unwrap());

    store
        .listing_add(
            &index,
            &listing,
            "s1",
            in_ms(LONG),
            b"100 90 Firefox 133 on Linux",
        )
        .await
        .unwrap();
    store
        .listing_add(
            &index,
            &listing,
            "s2",
            in_ms(LONG),
            b"200 190 Chrome 131 on Windows 10",
        )
        .await
        .unwrap();
    // A member without an entry (a session from before listing existed).
    store.index_add(&index, "s0", in_ms(LONG)).await.unwrap();
    let mut entries = store.listing_entries(&index, &listing).await.unwrap();
    entries.sort();
    assert_eq!(
        entries,
        [
            ("s0".to_owned(), None),
            (
                "s1".to_owned(),
                Some(b"100 90 Firefox 133 on Linux".to_vec())
            ),
            (
                "s2".to_owned(),
                Some(b"200 190 Chrome 131 on Windows 10".to_vec())
            ),
        ]
    );

    assert!(store.listing_touch(&listing, "s1", b"160").await.unwrap());
    assert!(
        !store.listing_touch(&listing, "s0", b"160").await.unwrap(),
        "no entry, none made"
    );
    let entries = store.listing_entries(&index, &listing).await.unwrap();
    let s1 = entries.iter().find(|(member, _)| member == "s1").unwrap();
    assert_eq!(s1.1.as_deref(), Some(&b"160 90 Firefox 133 on Linux"[..]));

    store.listing_remove(&index, &listing, "s1").await.unwrap();
    assert!(
        !store.listing_touch(&listing, "s1", b"170").await.unwrap(),
        "an ended entry stays gone"
    );
    let mut members: Vec<String> = store
        .listing_entries(&index, &listing)
        .await
        .unwrap()
        .into_iter()
        .map(|(member, _)| member)
        .collect();
    members.sort();
    assert_eq!(members, ["s0", "s2"]);

    // Entries leave with their members' time and the hash expires with the index.
    let short = format!("{}short:{{s}}", prefix.replace(['{', '}'], ""));
    let short_listing = format!("{short}:list");
    store
        .listing_add(&short, &short_listing, "a", in_ms(SHORT), b"1 1 x")
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        store
            .listing_entries(&short, &short_listing)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .listing_touch(&short_listing, "a", b"2")
            .await
            .unwrap(),
        "the hash expired"
    );
    store
        .listing_add(&short, &short_listing, "b", in_ms(LONG), b"3 3 y")
        .await
        .unwrap();
    assert!(
        !store
            .listing_touch(&short_listing, "a", b"4")
            .await
            .unwrap(),
        "a's entry went with it"
    );
    assert_eq!(
        store.listing_entries(&short, &short_listing).await.unwrap(),
        [("b".to_owned(), Some(b"3 3 y".to_vec()))]
    );
    store
        .delete(&[index, listing, short, short_listing])
        .await
        .unwrap();
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
    check_index_lives_as_long_as_its_latest_member(store, &prefix()).await;
    check_expired_members_leave_the_index_on_write(store, &prefix()).await;
    check_delete_indexed(store, &prefix()).await;
    check_lock_renew_and_release(store, &prefix()).await;
    check_listing(store, &prefix()).await;
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
    index_lives_as_long_as_its_latest_member => check_index_lives_as_long_as_its_latest_member,
    expired_members_leave_the_index_on_write => check_expired_members_leave_the_index_on_write,
    delete_indexed_ends_every_member_in_one_call => check_delete_indexed,
    locks_are_renewed_and_released_only_by_their_holder => check_lock_renew_and_release,
    listing_lives_beside_its_index => check_listing,
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
        store.index_add(&index, "m", in_ms(LONG)).await.unwrap();
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
// Helpers.
// ---------------------------------------------------------------------------

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
