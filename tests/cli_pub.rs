//! `switchyard pub` through the built binary against an in-process broker: keys from
//! `--key-separator`, stdin lines spread over the partitions as the topic routes them
//! (round robin, key hash, a topic the first batch creates, explicit), and one summary
//! line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

mod common;
use common::cli::{broker, create, ok, run};
use common::topic_env as env;
use common::topics::{label, Client};

/// Each partition's next offset, from `topic list`.
async fn next_offsets(addr: std::net::SocketAddr, topic: &str) -> Vec<u64> {
    let mut c = Client::connect(addr).await;
    c.send(&env("list", &[], b"")).await;
    let list: serde_json::Value = serde_json::from_slice(&c.next().await.payload).unwrap();
    let t = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic)
        .unwrap();
    t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["next_offset"].as_u64().unwrap())
        .collect()
}

/// Every record of `topic` as `sub --json` prints it.
async fn records(a: &str, topic: &str, n: usize) -> Vec<serde_json::Value> {
    let max = n.to_string();
    let (out, _) = ok(
        &[
            "sub", topic, "--from", "earliest", "--max", &max, "--json", "--broker", a,
        ],
        b"",
    )
    .await;
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[actix_rt::test]
async fn key_separator_splits_each_line_at_its_first_separator() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "").await;
    let a = b.local_addr().to_string();
    let (_, err) = ok(
        &["pub", "ks", "--key-separator", "::", "--broker", &a],
        b"a::1\nb::x::y\nno key\n::empty key\n",
    )
    .await;
    assert_eq!(err, "published 4 records to ks (partition 0)\n");
    ok(
        &["pub", "ks", "m::v", "--key-separator", "::", "--broker", &a],
        b"",
    )
    .await;
    let got: Vec<(serde_json::Value, serde_json::Value)> = records(&a, "ks", 5)
        .await
        .into_iter()
        .map(|r| (r["key"].clone(), r["value"].clone()))
        .collect();
    let j = |k: Option<&str>, v: &str| (k.map_or(serde_json::Value::Null, Into::into), v.into());
    assert_eq!(
        got,
        vec![
            j(Some("a"), "1"),
            j(Some("b"), "x::y"),
            j(None, "no key"),
            j(Some(""), "empty key"),
            j(Some("m"), "v")
        ]
    );
    let clash = run(
        &[
            "pub",
            "ks",
            "--key",
            "k",
            "--key-separator",
            ":",
            "--broker",
            &a,
        ],
        b"",
    )
    .await;
    assert!(!clash.status.success());
}

#[actix_rt::test]
async fn keyless_lines_spread_over_every_partition_of_a_round_robin_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "").await;
    let a = b.local_addr().to_string();
    create(&a, &["rr", "--partitions", "4"]).await;
    let input: String = (0..4000).map(|i| format!("line-{i}\n")).collect();
    let (_, err) = ok(&["pub", "rr", "--broker", &a], input.as_bytes()).await;
    assert_eq!(
        err, "published 4000 records to rr (partitions 0-3)\n",
        "one summary line"
    );
    assert_eq!(next_offsets(b.local_addr(), "rr").await, vec![1000; 4]);
    // Each partition holds its lines in stdin's order.
    let mut last: BTreeMap<u64, i64> = BTreeMap::new();
    for r in records(&a, "rr", 4000).await {
        let n: i64 = r["value"].as_str().unwrap()["line-".len()..]
            .parse()
            .unwrap();
        let p = r["partition"].as_u64().unwrap();
        assert!(
            n > *last.get(&p).unwrap_or(&-1),
            "partition {p} out of order at {n}"
        );
        last.insert(p, n);
    }
}

#[actix_rt::test]
async fn keyed_lines_go_where_key_hash_routes_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "").await;
    let a = b.local_addr().to_string();
    let created = create(&a, &["kh", "--partitions", "4", "--routing", "key_hash"]).await;
    assert_eq!(
        created,
        "created topic kh: 4 partitions, routing key_hash, fsync always, retention none / none\n"
    );
    let mut input = String::new();
    for i in 0..400 {
        input.push_str(&format!("k{}:v{i}\n", i % 8));
    }
    for i in 0..40 {
        input.push_str(&format!("keyless {i}\n"));
    }
    let (_, err) = ok(
        &["pub", "kh", "--key-separator", ":", "--broker", &a],
        input.as_bytes(),
    )
    .await;
    assert!(
        err.starts_with("published 440 records to kh (partition"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
    // Where the broker itself routes each key.
    let mut c = Client::connect(b.local_addr()).await;
    let mut home = BTreeMap::new();
    for k in 0..8 {
        let key = format!("k{k}");
        c.send(&env(
            "publish",
            &[("topic", "kh"), ("key", &key), ("id", "1")],
            b"probe",
        ))
        .await;
        home.insert(
            key,
            label(&c.next().await, "partition").parse::<u64>().unwrap(),
        );
    }
    let mut keyless = [0; 4];
    for r in records(&a, "kh", 448).await {
        match r["key"].as_str() {
            Some(k) => assert_eq!(r["partition"].as_u64(), Some(home[k]), "{r}"),
            None => keyless[r["partition"].as_u64().unwrap() as usize] += 1,
        }
    }
    assert_eq!(keyless, [10; 4], "key-less lines are dealt out in turn");
}

#[actix_rt::test]
async fn a_topic_the_first_batch_creates_is_spread_from_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "[topics]\ndefault_partitions = 3").await;
    let a = b.local_addr().to_string();
    let input: String = (0..2500).map(|i| format!("{i}\n")).collect();
    let (_, err) = ok(&["pub", "fresh", "--broker", &a], input.as_bytes()).await;
    assert_eq!(err, "published 2500 records to fresh (partitions 0-2)\n");
    let offsets = next_offsets(b.local_addr(), "fresh").await;
    assert_eq!(offsets.iter().sum::<u64>(), 2500);
    // The first 1000 went where the broker put them; the other 1500 in turn.
    let mut sorted = offsets.clone();
    sorted.sort();
    assert_eq!(sorted, vec![500, 500, 1500], "{offsets:?}");
}

#[actix_rt::test]
async fn explicit_routing_needs_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "").await;
    let a = b.local_addr().to_string();
    create(&a, &["ex", "--partitions", "2", "--routing", "explicit"]).await;
    let out = run(&["pub", "ex", "--broker", &a], b"x\n").await;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: topic `ex` has explicit routing: name the partition with --partition\n"
    );
    let (_, err) = ok(
        &["pub", "ex", "--partition", "1", "--broker", &a],
        b"x\ny\n",
    )
    .await;
    assert_eq!(err, "published 2 records to ex (partition 1)\n");
    assert_eq!(next_offsets(b.local_addr(), "ex").await, vec![0, 2]);
}
