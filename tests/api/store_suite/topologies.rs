//! The suite against a 3-node Redis Cluster and a Sentinel setup, each made of
//! private `redis-server` processes: outages, failover, and a readiness probe that
//! tells the truth when part of the cluster or the Sentinel master is gone.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use identity_service::store::{KeyValueStore, RedisStore};

use super::faults::{DOWN_BOUND, every_call, wait_until_usable};
use super::{LONG, check_all, check_lock_renew_and_release, prefix};
use crate::private_redis::{PrivateRedis, free_cluster_port, free_port, wait_for_reply};

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

    // One master of three gone: its slots are lost and the cluster soon says
    // `fail`, while the other nodes still answer PING. Readiness must say so.
    store.ping().await.unwrap();
    nodes[0].stop();
    let not_ready = wait_until_not_ready(&store, Duration::from_secs(15)).await;
    eprintln!("one master of three killed; probe not ok after {not_ready:?}");

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
    store.ping().await.unwrap();
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

    // A master name the sentinels do not know: no master, not ready.
    let unknown = RedisStore::connect(&format!(
        "redis+sentinel://127.0.0.1:{sentinel_port}/nosuchmaster"
    ))
    .unwrap();
    wait_until_not_ready(&unknown, Duration::from_secs(5)).await;

    master.stop();
    let started = Instant::now();
    assert!(
        store.ping().await.is_err(),
        "the master is gone and no replica has taken over yet"
    );
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
    store.ping().await.unwrap();
    check_lock_renew_and_release(&store, &prefix()).await;
}

/// Polls the readiness probe until it fails; panics after `limit`.
async fn wait_until_not_ready(store: &RedisStore, limit: Duration) -> Duration {
    let started = Instant::now();
    while store.ping().await.is_ok() {
        assert!(
            started.elapsed() < limit,
            "the probe still says ok after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}
