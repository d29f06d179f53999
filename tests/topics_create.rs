//! `topic create` with options: a topic a client creates keeps its routing, fsync and
//! retention across a restart (they live in its `topic.json`), and bad options get an
//! `error` on a connection that stays usable; with `auto_create`, a subscription made
//! before the first publish creates its topic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::topic_env as env;
use common::topics::{config, label, Client};

async fn partition_of_key(c: &mut Client, topic: &str, key: &str, id: &str) -> String {
    c.send(&env(
        "publish",
        &[("topic", topic), ("key", key), ("id", id)],
        b"v",
    ))
    .await;
    let ack = c.next().await;
    assert!(ack.is("topic", "ack"), "{ack:?}");
    label(&ack, "partition")
}

async fn routing_listed(c: &mut Client, topic: &str) -> String {
    c.send(&env("list", &[], b"")).await;
    let list: serde_json::Value = serde_json::from_slice(&c.next().await.payload).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic)
        .map(|t| t["routing"].as_str().unwrap().to_string())
        .unwrap()
}

#[actix_rt::test]
async fn a_created_topic_keeps_its_options_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first;
    {
        let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
        let mut c = Client::connect(b.local_addr()).await;
        c.send(&env(
            "create",
            &[
                ("topic", "orders"),
                ("partitions", "4"),
                ("routing", "key_hash"),
                ("fsync", "interval"),
                ("fsync_interval_ms", "250"),
                ("retention_ms", "60000"),
            ],
            b"",
        ))
        .await;
        assert!(c.next().await.is("topic", "created"));
        first = partition_of_key(&mut c, "orders", "customer-7", "1").await;
        assert_eq!(
            partition_of_key(&mut c, "orders", "customer-7", "2").await,
            first
        );
        b.run_until(async {}).await;
    }
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("orders/topic.json")).unwrap())
            .unwrap();
    assert_eq!(
        stored,
        serde_json::json!({"partitions": 4, "routing": "key_hash", "fsync": "interval",
            "fsync_interval_ms": 250, "retention_ms": 60000})
    );

    // After the restart the key still lands where it did: the routing was kept, not
    // reset to the default round robin.
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    assert_eq!(routing_listed(&mut c, "orders").await, "key_hash");
    c.send(&env("list", &[], b"")).await;
    let list: serde_json::Value = serde_json::from_slice(&c.next().await.payload).unwrap();
    let t = &list[0];
    assert_eq!(
        (
            &t["fsync"],
            &t["fsync_interval_ms"],
            &t["retention_ms"],
            &t["retention_bytes"]
        ),
        (
            &serde_json::json!("interval"),
            &serde_json::json!(250),
            &serde_json::json!(60000),
            &serde_json::Value::Null
        )
    );
    for id in 3..7 {
        assert_eq!(
            partition_of_key(&mut c, "orders", "customer-7", &id.to_string()).await,
            first
        );
    }
}

#[actix_rt::test]
async fn the_config_wins_over_a_stored_topic_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
        let mut c = Client::connect(b.local_addr()).await;
        c.send(&env(
            "create",
            &[("topic", "t"), ("partitions", "2"), ("routing", "key_hash")],
            b"",
        ))
        .await;
        assert!(c.next().await.is("topic", "created"));
        b.run_until(async {}).await;
    }
    let b = switchyard::start(&config(
        dir.path(),
        "[[topic]]\nname = \"t\"\npartitions = 2\nrouting = \"explicit\"",
    ))
    .await
    .unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    assert_eq!(routing_listed(&mut c, "t").await, "explicit");
}

#[actix_rt::test]
async fn bad_create_options_get_an_error_and_the_connection_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    for (labels, says) in [
        (vec![("fsync", "sometimes")], "unknown fsync `sometimes`"),
        (
            vec![("fsync_interval_ms", "10")],
            "fsync_interval_ms needs fsync = interval",
        ),
        (
            vec![("fsync", "interval"), ("fsync_interval_ms", "0")],
            "fsync_interval_ms must be 1 to 3600000",
        ),
        (vec![("retention_ms", "soon")], "label retention_ms"),
    ] {
        let mut all = vec![("topic", "t"), ("id", "c1")];
        all.extend(labels);
        c.send(&env("create", &all, b"")).await;
        let e = c.next().await;
        assert!(e.is("topic", "error"), "{e:?}");
        assert!(label(&e, "error").contains(says), "{e:?}");
    }
    c.send(&env("create", &[("topic", "t"), ("fsync", "always")], b""))
        .await;
    assert!(c.next().await.is("topic", "created"));
}

/// The fsync option takes effect: a topic created with `always` syncs before it acks,
/// one created with `never` does not sync at all (on a broker whose default is the
/// opposite of each).
#[actix_rt::test]
async fn the_fsync_option_decides_whether_an_ack_waits_for_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    for (default, topic, option, synced) in [
        ("never", "durable", "always", true),
        ("always", "loose", "never", false),
    ] {
        let b = switchyard::start(&config(dir.path(), &format!("fsync = \"{default}\"")))
            .await
            .unwrap();
        let mut c = Client::connect(b.local_addr()).await;
        c.send(&env("create", &[("topic", topic), ("fsync", option)], b""))
            .await;
        assert!(c.next().await.is("topic", "created"));
        for id in ["1", "2", "3"] {
            c.send(&env("publish", &[("topic", topic), ("id", id)], b"v"))
                .await;
            assert!(c.next().await.is("topic", "ack"));
        }
        c.send(&env("list", &[], b"")).await;
        let list: serde_json::Value = serde_json::from_slice(&c.next().await.payload).unwrap();
        let t = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == topic)
            .unwrap();
        let fsyncs = t["partitions"][0]["fsyncs"].as_u64().unwrap();
        assert_eq!(fsyncs > 0, synced, "{topic}: {fsyncs} fsyncs");
        if synced {
            assert_eq!(t["partitions"][0]["durable_offset"], 3);
        }
        b.run_until(async {}).await;
    }
}

/// The gateway's `POST /v1/topics` takes the same options as `topic create`.
#[actix_rt::test]
async fn the_http_gateway_creates_topics_with_the_same_options() {
    use common::http::{get, post_json};
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(
        dir.path(),
        "[gateway]\nhttp_bind = \"127.0.0.1:0\"\ngrpc_bind = \"127.0.0.1:0\"",
    ))
    .await
    .unwrap();
    let h = b.gateway().http.unwrap();
    let body = serde_json::json!({"name": "audit", "partitions": 2, "routing": "key_hash",
        "fsync": "always", "retention_bytes": 1048576});
    let r = post_json(h, "/v1/topics", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let t = get(h, "/v1/topics").await.json()["topics"][0].clone();
    assert_eq!(
        (
            &t["name"],
            &t["routing"],
            &t["fsync"],
            &t["retention_bytes"]
        ),
        (
            &serde_json::json!("audit"),
            &serde_json::json!("key_hash"),
            &serde_json::json!("always"),
            &serde_json::json!(1048576)
        )
    );
    for (bad, says) in [
        (
            serde_json::json!({"name": "x", "fsync": "sometimes"}),
            "unknown fsync",
        ),
        (
            serde_json::json!({"name": "x", "routing": "random"}),
            "unknown routing",
        ),
    ] {
        let r = post_json(h, "/v1/topics", &bad).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains(says), "{}", r.text());
    }
}

/// Creating a topic again is fine with the same options or none; an option that
/// differs from the existing topic's is an error naming both.
#[actix_rt::test]
async fn creating_an_existing_topic_with_other_options_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    let first = [
        ("topic", "t"),
        ("partitions", "2"),
        ("routing", "key_hash"),
        ("fsync", "always"),
    ];
    for labels in [&first[..], &first[..], &[("topic", "t")][..]] {
        c.send(&env("create", labels, b"")).await;
        let e = c.next().await;
        assert!(e.is("topic", "created"), "{labels:?}: {e:?}");
    }
    for (option, value, says) in [
        (
            "routing",
            "round_robin",
            "exists with routing key_hash, not round_robin",
        ),
        ("fsync", "never", "exists with fsync always, not never"),
        ("partitions", "3", "exists with partitions 2, not 3"),
        (
            "retention_ms",
            "1000",
            "exists with retention_ms the default, not 1000",
        ),
    ] {
        c.send(&env("create", &[("topic", "t"), (option, value)], b""))
            .await;
        let e = c.next().await;
        assert!(e.is("topic", "error"), "{e:?}");
        assert!(label(&e, "error").contains(says), "{e:?}");
    }
}

#[actix_rt::test]
async fn a_subscriber_started_before_its_producer_gets_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut sub = Client::connect(b.local_addr()).await;
    sub.send(&env(
        "subscribe",
        &[("topic", "later"), ("sub", "s"), ("from", "earliest")],
        b"",
    ))
    .await;
    let ok = sub.next().await;
    assert!(ok.is("topic", "subscribed"), "{ok:?}");
    let mut group = Client::connect(b.local_addr()).await;
    group
        .send(&env(
            "subscribe",
            &[("topic", "later2"), ("sub", "g"), ("group", "g1")],
            b"",
        ))
        .await;
    let ok = group.next().await;
    assert!(!ok.is("topic", "error"), "{ok:?}");
    let mut p = Client::connect(b.local_addr()).await;
    p.send(&env(
        "publish",
        &[("topic", "later"), ("id", "1")],
        b"first",
    ))
    .await;
    assert!(p.next().await.is("topic", "ack"));
    let d = sub.next().await;
    assert!(d.is("topic", "deliver"), "{d:?}");
    assert_eq!(&d.payload[..], b"first");
}
