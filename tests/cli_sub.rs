//! `switchyard sub` and `switchyard events` through the built binary against an
//! in-process broker: `--format` placeholders, `--json` (keys, labels, values that are
//! not UTF-8), host names for `--broker`, and surviving a broker restart (a new broker
//! on the same port and data dir) with no gap and no duplicate, plain and in a group.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

mod common;
use common::cli::{broker, ok, restart, Running};
use common::topic_env as env;
use common::topics::Client;

/// Publishes `values` one envelope each (round robin over the partitions), with
/// `labels`, and waits for the acks.
async fn publish(
    addr: std::net::SocketAddr,
    topic: &str,
    values: &[Vec<u8>],
    labels: &[(&str, &str)],
) {
    let mut c = Client::connect(addr).await;
    for (i, v) in values.iter().enumerate() {
        let id = i.to_string();
        let mut l = vec![("topic", topic), ("id", id.as_str())];
        l.extend_from_slice(labels);
        c.send(&env("publish", &l, v)).await;
    }
    for _ in values {
        let ack = c.next().await;
        assert!(ack.is("topic", "ack"), "{ack:?}");
    }
}

async fn create(addr: std::net::SocketAddr, topic: &str, partitions: &str) {
    let mut c = Client::connect(addr).await;
    c.send(&env(
        "create",
        &[("topic", topic), ("partitions", partitions)],
        b"",
    ))
    .await;
    assert!(c.next().await.is("topic", "created"));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[actix_rt::test]
async fn format_placeholders_and_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "").await;
    let addr = b.local_addr();
    let before = now_ms();
    let mut c = Client::connect(addr).await;
    c.send(&env(
        "publish",
        &[
            ("topic", "fmt"),
            ("id", "1"),
            ("key", "k1"),
            ("trace", "abc"),
            ("env", "prod"),
        ],
        b"hello",
    ))
    .await;
    c.send(&env("publish", &[("topic", "fmt"), ("id", "2")], b"world"))
        .await;
    c.send(&env(
        "publish",
        &[("topic", "fmt"), ("id", "3"), ("key", "k3")],
        b"\xff\x00",
    ))
    .await;
    for _ in 0..3 {
        assert!(c.next().await.is("topic", "ack"));
    }
    let after = now_ms();
    let a = addr.to_string();
    let base = [
        "sub", "fmt", "--from", "earliest", "--max", "3", "--broker", &a,
    ];

    let out = common::cli::run(&base, b"").await;
    assert!(out.status.success());
    assert_eq!(
        out.stdout, b"0 0 hello\n0 1 world\n0 2 \xff\x00\n",
        "the default is unchanged"
    );

    let mut args = base.to_vec();
    args.extend(["--format", "%t|%p|%o|%k|%h|%s|%S|100%%\\t.\\n"]);
    let out = common::cli::run(&args, b"").await;
    assert_eq!(
        out.stdout,
        &b"fmt|0|0|k1|trace=abc,env=prod|hello|5|100%\t.\nfmt|0|1|||world|5|100%\t.\nfmt|0|2|k3||\xff\x00|2|100%\t.\n"[..],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = base.to_vec();
    args.extend(["--format", "%T\\n"]);
    let (text, _) = ok(&args, b"").await;
    for t in text.lines() {
        let t: u64 = t.parse().unwrap();
        assert!(
            (before..=after).contains(&t),
            "timestamp {t} not in {before}..={after}"
        );
    }

    // A host name for the broker: localhost may resolve to ::1 first, where nothing
    // listens; the next address is tried.
    let host = format!("localhost:{}", addr.port());
    let (json, _) = ok(
        &[
            "sub", "fmt", "--from", "earliest", "--max", "3", "--json", "--broker", &host,
        ],
        b"",
    )
    .await;
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let ts = lines[0]["timestamp"].as_u64().unwrap();
    assert_eq!(
        lines[0],
        serde_json::json!({"topic": "fmt", "partition": 0, "offset": 0, "timestamp": ts,
            "key": "k1", "labels": {"trace": "abc", "env": "prod"}, "value": "hello"})
    );
    assert_eq!(lines[1]["key"], serde_json::Value::Null);
    assert_eq!(lines[1]["labels"], serde_json::json!({}));
    assert_eq!(lines[1]["value"], "world");
    assert_eq!(lines[2]["key"], "k3");
    assert_eq!(lines[2]["value_base64"], "/wA=");
    assert!(lines[2].get("value").is_none());

    let bad = common::cli::run(&["sub", "fmt", "--format", "%q", "--broker", &a], b"").await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown placeholder %q"));
}

/// Every line of `sub`'s default output as (partition, offset) -> value.
fn parse(lines: &[String]) -> BTreeMap<(u32, u64), String> {
    let mut seen = BTreeMap::new();
    for l in lines {
        let mut f = l.splitn(3, ' ');
        let key = (
            f.next().unwrap().parse().unwrap(),
            f.next().unwrap().parse().unwrap(),
        );
        let value = f.next().unwrap().to_string();
        assert!(
            seen.insert(key, value).is_none(),
            "{key:?} printed twice:\n{lines:#?}"
        );
    }
    seen
}

async fn survive_a_restart(group: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "").await;
    let a = b.local_addr().to_string();
    create(b.local_addr(), "r", "2").await;
    let first: Vec<Vec<u8>> = (0..60)
        .map(|i| format!("before-{i}").into_bytes())
        .collect();
    publish(b.local_addr(), "r", &first, &[]).await;
    let mut args = vec!["sub", "r", "--broker", &a, "--credit", "8"];
    match group {
        Some(g) => args.extend(["--group", g]),
        None => args.extend(["--from", "earliest"]),
    }
    let sub = Running::spawn(&args);
    let mut once = Running::spawn(&[
        "sub",
        "r",
        "--broker",
        &a,
        "--from",
        "earliest",
        "--no-reconnect",
    ]);
    assert_eq!(sub.lines(60).await.len(), 60);
    once.lines(60).await;

    let b = restart(b, dir.path(), "").await;
    assert!(
        !once.exit().await.success(),
        "--no-reconnect exits when the broker goes"
    );
    assert!(
        once.stderr().contains("the broker closed the connection"),
        "{}",
        once.stderr()
    );
    let second: Vec<Vec<u8>> = (0..60).map(|i| format!("after-{i}").into_bytes()).collect();
    publish(b.local_addr(), "r", &second, &[]).await;
    let lines = sub.lines(120).await;
    let seen = parse(&lines);
    assert_eq!(seen.len(), 120, "{lines:#?}");
    let values: BTreeSet<&str> = seen.values().map(String::as_str).collect();
    for v in first.iter().chain(&second) {
        assert!(
            values.contains(std::str::from_utf8(v).unwrap()),
            "missing {v:?}"
        );
    }
    for p in 0..2u32 {
        let offsets: Vec<u64> = seen.keys().filter(|(q, _)| *q == p).map(|k| k.1).collect();
        assert_eq!(
            offsets,
            (0..60).collect::<Vec<u64>>(),
            "partition {p} in order, no gap"
        );
    }
    assert!(sub.stderr().contains("reconnecting in"), "{}", sub.stderr());
    if let Some(g) = group {
        // What was printed is committed, and nothing beyond.
        // (The commit of the last batch follows its printing.)
        let mut c = Client::connect(b.local_addr()).await;
        let mut groups = serde_json::Value::Null;
        for _ in 0..500 {
            c.send(&env("list", &[], b"")).await;
            let list: serde_json::Value = serde_json::from_slice(&c.next().await.payload).unwrap();
            groups = list[0]["groups"][g].clone();
            if groups == serde_json::json!({"0": 60, "1": 60}) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("group {g} committed {groups}");
    }
}

#[actix_rt::test]
async fn sub_survives_a_broker_restart_without_gaps_or_duplicates() {
    survive_a_restart(None).await;
}

#[actix_rt::test]
async fn sub_in_a_group_survives_a_broker_restart_without_gaps_or_duplicates() {
    survive_a_restart(Some("g")).await;
}

#[actix_rt::test]
async fn events_subscribes_again_after_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "").await;
    let a = b.local_addr().to_string();
    let events = Running::spawn(&["events", "--broker", &a]);
    let until_printed = |addr, word: &'static str| {
        let events = &events;
        async move {
            let mut c = Client::connect(addr).await;
            let payload = format!("{{\"events\":[\"x.ping\"],\"data\":\"{word}\"}}");
            let frame = format!("eventbus message 0 {}\n{payload}", payload.len());
            for _ in 0..400 {
                c.send(frame.as_bytes()).await;
                if events.stdout().contains(word) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{word} never printed; stderr:\n{}", events.stderr());
        }
    };
    until_printed(b.local_addr(), "first").await;
    let b = restart(b, dir.path(), "").await;
    until_printed(b.local_addr(), "second").await;
    assert!(
        events.stderr().contains(
            "switchyard events: the broker closed the connection; reconnecting in 100 ms"
        ),
        "{}",
        events.stderr()
    );
}
