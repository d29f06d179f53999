//! A broker with the gateway on port 0 (HTTP and gRPC) and the conformance driver,
//! and clients for it.

use switchyard::Broker;
use switchyard_actors::gateway::pb::broker_client::BrokerClient;
use tonic::transport::Channel;

use super::drivers::{config, driver};
use super::{Log, LogGuard};

pub fn gateway_config(dir: &std::path::Path, extra: &str) -> switchyard::Config {
    let body = format!(
        "[gateway]\nhttp_bind = \"127.0.0.1:0\"\ngrpc_bind = \"127.0.0.1:0\"\n{extra}\n{}",
        driver("conf", "conformance", "")
    );
    config(dir, &body)
}

/// A broker with the gateway on port 0 and the conformance driver; the log is captured.
pub async fn start(extra: &str) -> (Broker, tempfile::TempDir, LogGuard) {
    let (_log, guard) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&gateway_config(dir.path(), extra))
        .await
        .unwrap();
    (b, dir, guard)
}

pub async fn health_client(b: &Broker) -> tonic_health::pb::health_client::HealthClient<Channel> {
    let ch = Channel::from_shared(format!("http://{}", b.gateway().grpc.unwrap()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic_health::pb::health_client::HealthClient::new(ch)
}

pub async fn grpc(b: &Broker) -> BrokerClient<Channel> {
    BrokerClient::connect(format!("http://{}", b.gateway().grpc.unwrap()))
        .await
        .unwrap()
}

/// Like [`start`], and the captured log for the test to read.
pub async fn start_logged(extra: &str) -> (Broker, tempfile::TempDir, Log, LogGuard) {
    let (log, guard) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&gateway_config(dir.path(), extra))
        .await
        .unwrap();
    (b, dir, log, guard)
}

pub async fn create_topic(h: std::net::SocketAddr, name: &str, partitions: u32) {
    let r = super::http::post_json(
        h,
        "/v1/topics",
        &serde_json::json!({"name": name, "partitions": partitions}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

/// Publishes `p<partition>-<i>` for each `i` to one partition.
pub async fn publish_range(
    h: std::net::SocketAddr,
    topic: &str,
    partition: u32,
    range: std::ops::Range<u64>,
) {
    let values: Vec<String> = range.map(|i| format!("p{partition}-{i}")).collect();
    let r = super::http::post_json(
        h,
        &format!("/v1/topics/{topic}/messages"),
        &serde_json::json!({"values": values, "partition": partition}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The offsets `group` has committed on `topic`, per partition.
pub async fn committed(
    h: std::net::SocketAddr,
    topic: &str,
    group: &str,
) -> std::collections::BTreeMap<u32, u64> {
    let v = super::http::get(h, "/v1/topics").await.json();
    let t = v["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic)
        .cloned()
        .unwrap_or_default();
    t["groups"][group]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(p, o)| (p.parse().unwrap(), o.as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (up to 10 s) until `group` has committed exactly `want` on `topic`.
pub async fn wait_committed(
    h: std::net::SocketAddr,
    topic: &str,
    group: &str,
    want: &[(u32, u64)],
) {
    let want: std::collections::BTreeMap<u32, u64> = want.iter().copied().collect();
    let mut last = Default::default();
    for _ in 0..200 {
        last = committed(h, topic, group).await;
        if last == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("group {group} committed {last:?}, not {want:?}");
}

/// The `group rebalanced` log lines of `group` so far.
pub fn rebalances(log: &Log, group: &str) -> Vec<String> {
    let tag = format!("group={group} ");
    log.text()
        .lines()
        .filter(|l| l.contains("group rebalanced") && l.contains(&tag))
        .map(str::to_string)
        .collect()
}

/// Checks that `got` (what a later member read, per partition, in order) goes on,
/// without a gap, from at most the first offset the earlier member did not read
/// (`read_before`) to `end`, and never below `floor` (the group's commit before).
pub fn covers_the_rest(
    got: &std::collections::BTreeMap<u32, Vec<u64>>,
    read_before: &std::collections::BTreeSet<(u32, u64)>,
    floor: u64,
    end: u64,
    partitions: u32,
) {
    for p in 0..partitions {
        let offs = got
            .get(&p)
            .unwrap_or_else(|| panic!("nothing read from partition {p}"));
        let first = offs[0];
        assert!(
            first >= floor,
            "partition {p} started at {first}, below the commit {floor}"
        );
        let first_unread = (floor..end)
            .find(|o| !read_before.contains(&(p, *o)))
            .unwrap_or(end);
        assert!(
            first <= first_unread,
            "partition {p}: offsets {first_unread}..{first} were lost to the group"
        );
        let want: Vec<u64> = (first..end).collect();
        assert_eq!(offs, &want, "partition {p}: a gap or a reordering");
    }
}
