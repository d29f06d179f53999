//! Topics over real TCP: publish and ack, batches, routing, errors that leave the
//! connection usable, restart, and `kill -9` of the binary under `fsync = "always"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchyard_actors::topic::wire::batch_payload;
use tokio::io::AsyncReadExt;

mod common;
use common::topic_env as env;
use common::topics::{config, label, Client};

#[actix_rt::test]
async fn publish_batches_routing_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "[topics]\ndefault_partitions = 2"))
        .await
        .unwrap();
    let mut c = Client::connect(b.local_addr()).await;

    // Round robin from partition 0 (the seed's first message went to 1).
    for (id, want_partition) in [("1", "0"), ("2", "1"), ("3", "0")] {
        c.send(&env("publish", &[("topic", "rr"), ("id", id)], b"v"))
            .await;
        let ack = c.next().await;
        assert!(ack.is("topic", "ack"), "{ack:?}");
        assert_eq!(
            (label(&ack, "id"), label(&ack, "partition")),
            (id.to_string(), want_partition.to_string())
        );
    }

    // A batch is acked with its offset range.
    let payload = batch_payload([
        (Some(&b"k"[..]), &b"a"[..]),
        (None, &b"b"[..]),
        (None, &b"c"[..]),
    ]);
    c.send(&env(
        "publish",
        &[
            ("topic", "batch"),
            ("id", "b1"),
            ("count", "3"),
            ("partition", "1"),
        ],
        &payload,
    ))
    .await;
    let ack = c.next().await;
    assert_eq!(
        (
            label(&ack, "partition"),
            label(&ack, "offset"),
            label(&ack, "count")
        ),
        ("1".into(), "0".into(), "3".into())
    );

    // Key hashing sends one key to one partition.
    c.send(&env(
        "create",
        &[
            ("topic", "keyed"),
            ("partitions", "4"),
            ("routing", "key_hash"),
        ],
        b"",
    ))
    .await;
    assert!(c.next().await.is("topic", "created"));
    let mut seen = std::collections::HashSet::new();
    for i in 0..8 {
        c.send(&env(
            "publish",
            &[("topic", "keyed"), ("id", &i.to_string()), ("key", "same")],
            b"x",
        ))
        .await;
        seen.insert(label(&c.next().await, "partition"));
    }
    assert_eq!(seen.len(), 1);

    // Explicit routing needs a partition.
    c.send(&env(
        "create",
        &[
            ("topic", "pinned"),
            ("partitions", "2"),
            ("routing", "explicit"),
        ],
        b"",
    ))
    .await;
    assert!(c.next().await.is("topic", "created"));
    c.send(&env("publish", &[("topic", "pinned"), ("id", "e1")], b"x"))
        .await;
    let err = c.next().await;
    assert!(
        err.is("topic", "error") && label(&err, "error").contains("a partition is required"),
        "{err:?}"
    );

    // Bad input gets an error and the connection stays usable.
    for (labels, want) in [
        (
            vec![("topic", "bad name"), ("id", "x1")],
            "invalid topic name",
        ),
        (
            vec![("topic", "rr"), ("id", "x2"), ("partition", "9")],
            "has no partition 9",
        ),
        (
            vec![("topic", "rr"), ("id", "x3"), ("count", "2")],
            "more records than the payload can hold",
        ),
        (
            vec![("topic", "rr"), ("id", "x5"), ("count", "1")],
            "batch item 0",
        ),
        (vec![("id", "x4")], "missing label topic"),
    ] {
        c.send(&env("publish", &labels, b"zz")).await;
        let err = c.next().await;
        assert!(err.is("topic", "error"), "{err:?}");
        assert!(label(&err, "error").contains(want), "{err:?}");
    }
    c.send(&env("publish", &[("topic", "rr"), ("id", "ok")], b"v"))
        .await;
    assert!(c.next().await.is("topic", "ack"));

    c.send(&env("list", &[], b"")).await;
    let list = c.next().await;
    let topics: serde_json::Value = serde_json::from_slice(&list.payload).unwrap();
    let rr = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "rr")
        .unwrap();
    assert_eq!(rr["partitions"][0]["next_offset"], 2);
    assert_eq!(
        rr["partitions"][1]["next_offset"], 2,
        "four good publishes, in turn"
    );
}

#[actix_rt::test]
async fn auto_create_off_refuses_unknown_topics() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(
        dir.path(),
        "[topics]\nauto_create = false\n[[topic]]\nname = \"known\"\npartitions = 2",
    ))
    .await
    .unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&env("publish", &[("topic", "nope"), ("id", "1")], b"x"))
        .await;
    let err = c.next().await;
    assert!(
        label(&err, "error").contains("unknown topic `nope` (auto-create is off)"),
        "{err:?}"
    );
    c.send(&env("publish", &[("topic", "known"), ("id", "2")], b"x"))
        .await;
    assert!(c.next().await.is("topic", "ack"));
    // A subscriber started before its producer is refused too, and so is a group.
    for labels in [
        vec![("topic", "nope"), ("sub", "s"), ("id", "3")],
        vec![
            ("topic", "nope"),
            ("sub", "g"),
            ("group", "g1"),
            ("id", "4"),
        ],
    ] {
        c.send(&env("subscribe", &labels, b"")).await;
        let err = c.next().await;
        assert!(
            label(&err, "error").contains("unknown topic `nope` (auto-create is off)"),
            "{err:?}"
        );
    }
}

#[actix_rt::test]
async fn offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
        let mut c = Client::connect(b.local_addr()).await;
        for i in 0..5 {
            c.send(&env(
                "publish",
                &[("topic", "t"), ("id", &i.to_string())],
                b"x",
            ))
            .await;
            assert_eq!(label(&c.next().await, "offset"), i.to_string());
        }
        b.run_until(async {}).await;
    }
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&env("publish", &[("topic", "t"), ("id", "5")], b"x"))
        .await;
    assert_eq!(label(&c.next().await, "offset"), "5");
}

/// Starts the broker binary on port 0 with storage in `dir`; returns it and its address.
async fn publish_n(c: &mut Client, topic: &str, n: usize, tag: &str) {
    for i in 0..n {
        c.send(&env(
            "publish",
            &[("topic", topic), ("id", &format!("{tag}{i}"))],
            format!("{tag}{i}").as_bytes(),
        ))
        .await;
        assert!(c.next().await.is("topic", "ack"));
    }
}

#[actix_rt::test]
async fn subscribers_get_records_in_order_against_credit() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut p = Client::connect(b.local_addr()).await;
    publish_n(&mut p, "events", 5, "m").await;

    let mut s = Client::connect(b.local_addr()).await;
    s.send(&env(
        "subscribe",
        &[
            ("topic", "events"),
            ("from", "earliest"),
            ("credit", "3"),
            ("sub", "s1"),
        ],
        b"",
    ))
    .await;
    let ok = s.next().await;
    assert!(
        ok.is("topic", "subscribed") && label(&ok, "partitions") == "0:0",
        "{ok:?}"
    );
    for i in 0..3 {
        let d = s.next().await;
        assert!(d.is("topic", "deliver"));
        assert_eq!(
            (label(&d, "sub"), label(&d, "offset"), &d.payload[..]),
            ("s1".into(), i.to_string(), format!("m{i}").as_bytes())
        );
        assert!(!label(&d, "timestamp").is_empty());
    }
    // Out of credit: the rest waits.
    let mut more = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(200), s.s.read(&mut more))
            .await
            .is_err()
    );
    s.send(&env("credit", &[("sub", "s1"), ("credit", "10")], b""))
        .await;
    for i in 3..5 {
        assert_eq!(label(&s.next().await, "offset"), i.to_string());
    }
    // Live records arrive as they are published.
    publish_n(&mut p, "events", 1, "live").await;
    let d = s.next().await;
    assert_eq!(
        (label(&d, "offset"), &d.payload[..]),
        ("5".into(), &b"live0"[..])
    );

    // From latest and from an offset.
    let mut l = Client::connect(b.local_addr()).await;
    l.send(&env(
        "subscribe",
        &[("topic", "events"), ("sub", "late")],
        b"",
    ))
    .await;
    assert_eq!(label(&l.next().await, "partitions"), "0:6");
    l.send(&env(
        "subscribe",
        &[("topic", "events"), ("sub", "mid"), ("from", "4")],
        b"",
    ))
    .await;
    assert_eq!(label(&l.next().await, "partitions"), "0:4");
    assert_eq!(label(&l.next().await, "offset"), "4");
    assert_eq!(label(&l.next().await, "offset"), "5");

    // Bad requests get errors; the connection stays usable.
    for (labels, want) in [
        (
            vec![("topic", "events"), ("from", "soon")],
            "expected earliest, latest, committed or an offset",
        ),
        (vec![("topic", "events"), ("from", "99")], "past the end"),
        (
            vec![("topic", "events"), ("sub", "mid")],
            "exists on this connection",
        ),
    ] {
        l.send(&env("subscribe", &labels, b"")).await;
        let e = l.next().await;
        assert!(
            e.is("topic", "error") && label(&e, "error").contains(want),
            "{e:?}"
        );
    }
    l.send(&env("unsubscribe", &[("sub", "mid")], b"")).await;
    assert!(l.next().await.is("topic", "unsubscribed"));
}

#[actix_rt::test]
async fn per_partition_order_and_a_subscriber_without_credit_costs_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "[topics]\ndefault_partitions = 3"))
        .await
        .unwrap();
    let mut s = Client::connect(b.local_addr()).await;
    s.send(&env("create", &[("topic", "many")], b"")).await;
    assert!(s.next().await.is("topic", "created"));
    s.send(&env(
        "subscribe",
        &[("topic", "many"), ("credit", "0"), ("sub", "idle")],
        b"",
    ))
    .await;
    assert!(s.next().await.is("topic", "subscribed"));
    let mut p = Client::connect(b.local_addr()).await;
    let items: Vec<Vec<u8>> = (0..300).map(|i| format!("r{i}").into_bytes()).collect();
    for chunk in items.chunks(100) {
        let payload = batch_payload(chunk.iter().map(|v| (None, &v[..])));
        p.send(&env(
            "publish",
            &[("topic", "many"), ("id", "b"), ("count", "100")],
            &payload,
        ))
        .await;
        assert!(p.next().await.is("topic", "ack"));
    }
    // Nothing was sent to the subscriber without credit, so nothing queued for it.
    let peak = b.stats().snapshot().output_peak_bytes;
    assert!(
        peak < 4096,
        "output held for a subscriber without credit: {peak}"
    );
    s.send(&env("credit", &[("sub", "idle"), ("credit", "1000")], b""))
        .await;
    let mut last: [Option<u64>; 3] = [None; 3];
    for _ in 0..300 {
        let d = s.next().await;
        let part: usize = label(&d, "partition").parse().unwrap();
        let off: u64 = label(&d, "offset").parse().unwrap();
        assert!(
            last[part].is_none_or(|l| off == l + 1),
            "partition {part}: {off} after {:?}",
            last[part]
        );
        last[part] = Some(off);
    }
    assert_eq!(last, [Some(99), Some(99), Some(99)]);
}
