//! Idempotent publish over real TCP: a second publish of a `msg_id` within
//! `topics.dedup_window_ms` is acked like the first and not stored; round robin does
//! not move it; the window, the bound, the id's length, a race with the first, a
//! restart, and `dedup_window_ms = 0`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchyard_actors::topic::wire::batch_payload;
use switchyard_codecs::Envelope;

mod common;
use common::topic_env as env;
use common::topics::{config, label, Client};

/// (partition, offset, count, duplicate label) of an ack.
fn ack_of(e: &Envelope) -> (String, String, String, String) {
    assert!(e.is("topic", "ack"), "{e:?}");
    (
        label(e, "partition"),
        label(e, "offset"),
        label(e, "count"),
        label(e, "duplicate"),
    )
}

async fn publish(c: &mut Client, labels: &[(&str, &str)], payload: &[u8]) -> Envelope {
    c.send(&env("publish", labels, payload)).await;
    c.next().await
}

/// Records stored in `topic`, over all partitions (`topic list`).
async fn stored(c: &mut Client, topic: &str) -> u64 {
    c.send(&env("list", &[("id", "l")], b"")).await;
    let list = c.next().await;
    let v: serde_json::Value = serde_json::from_slice(&list.payload).unwrap();
    let t = v
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic)
        .expect("topic listed");
    t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["next_offset"].as_u64().unwrap() - p["start_offset"].as_u64().unwrap())
        .sum()
}

#[actix_rt::test]
async fn duplicates_are_acked_like_the_first_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "[topics]\ndefault_partitions = 3"))
        .await
        .unwrap();
    let mut c = Client::connect(b.local_addr()).await;

    // A single record, then the same msg_id again: round robin would move it on.
    let first = publish(
        &mut c,
        &[("topic", "t"), ("id", "1"), ("msg_id", "m1")],
        b"a",
    )
    .await;
    let (p, o, n, dup) = ack_of(&first);
    assert_eq!((n.as_str(), dup.as_str()), ("1", ""));
    for id in ["2", "3", "4"] {
        let again = publish(
            &mut c,
            &[("topic", "t"), ("id", id), ("msg_id", "m1")],
            b"a",
        )
        .await;
        assert_eq!(label(&again, "id"), id);
        assert_eq!(
            ack_of(&again),
            (p.clone(), o.clone(), "1".into(), "true".into())
        );
    }

    // A batch carries one msg_id for all its records.
    let payload = batch_payload([(None, &b"x"[..]), (None, &b"y"[..]), (None, &b"z"[..])]);
    let labels = [
        ("topic", "t"),
        ("id", "b"),
        ("count", "3"),
        ("msg_id", "batch-1"),
    ];
    let (bp, bo, bn, _) = ack_of(&publish(&mut c, &labels, &payload).await);
    assert_eq!(bn, "3");
    let labels = [
        ("topic", "t"),
        ("id", "b2"),
        ("count", "3"),
        ("msg_id", "batch-1"),
    ];
    assert_eq!(
        ack_of(&publish(&mut c, &labels, &payload).await),
        (bp, bo, "3".into(), "true".into())
    );
    assert_eq!(stored(&mut c, "t").await, 4, "one copy of each");

    // The same id on another topic is another publish.
    let other = publish(
        &mut c,
        &[("topic", "u"), ("id", "5"), ("msg_id", "m1")],
        b"a",
    )
    .await;
    assert_eq!(ack_of(&other).3, "");

    // The id is stored with the record: a subscriber sees it.
    c.send(&env(
        "subscribe",
        &[("topic", "t"), ("id", "s"), ("partition", &p), ("from", &o)],
        b"",
    ))
    .await;
    let mut seen = None;
    for _ in 0..3 {
        let e = c.next().await;
        if e.is("topic", "deliver") {
            seen = Some(label(&e, "msg_id"));
            break;
        }
    }
    assert_eq!(seen.as_deref(), Some("m1"));
}

#[actix_rt::test]
async fn a_duplicate_racing_the_first_is_stored_once_and_acked_alike() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "[topics]\ndefault_partitions = 2"))
        .await
        .unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    let mut d = Client::connect(b.local_addr()).await;
    for round in 0..20 {
        let id = format!("race-{round}");
        // Both in one write on one connection (one socket read: the same batch), and
        // a third on another connection, all before any ack.
        let mut both = env(
            "publish",
            &[("topic", "r"), ("id", "a"), ("msg_id", &id)],
            b"v",
        );
        both.extend(env(
            "publish",
            &[("topic", "r"), ("id", "b"), ("msg_id", &id)],
            b"v",
        ));
        c.send(&both).await;
        d.send(&env(
            "publish",
            &[("topic", "r"), ("id", "c"), ("msg_id", &id)],
            b"v",
        ))
        .await;
        let (a, bb, cc) = (c.next().await, c.next().await, d.next().await);
        assert_eq!(label(&a, "id"), "a", "answers in order");
        let acks = [ack_of(&a), ack_of(&bb), ack_of(&cc)];
        let firsts = acks.iter().filter(|x| x.3.is_empty()).count();
        assert_eq!(firsts, 1, "{acks:?}");
        for x in &acks {
            assert_eq!((&x.0, &x.1, &x.2), (&acks[0].0, &acks[0].1, &acks[0].2));
        }
    }
    assert_eq!(stored(&mut c, "r").await, 20);
}

#[actix_rt::test]
async fn past_the_window_or_with_dedup_off_a_msg_id_is_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "[topics]\ndedup_window_ms = 300"))
        .await
        .unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    let first = publish(
        &mut c,
        &[("topic", "w"), ("id", "1"), ("msg_id", "m")],
        b"a",
    )
    .await;
    assert_eq!(ack_of(&first).1, "0");
    let soon = publish(
        &mut c,
        &[("topic", "w"), ("id", "2"), ("msg_id", "m")],
        b"a",
    )
    .await;
    assert_eq!(
        ack_of(&soon),
        ("0".into(), "0".into(), "1".into(), "true".into())
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = publish(
        &mut c,
        &[("topic", "w"), ("id", "3"), ("msg_id", "m")],
        b"a",
    )
    .await;
    assert_eq!(
        ack_of(&late),
        ("0".into(), "1".into(), "1".into(), "".into())
    );
    drop(c);
    b.run_until(async {}).await;

    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "[topics]\ndedup_window_ms = 0"))
        .await
        .unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    for (id, offset) in [("1", "0"), ("2", "1")] {
        let a = publish(
            &mut c,
            &[("topic", "off"), ("id", id), ("msg_id", "m")],
            b"a",
        )
        .await;
        assert_eq!(
            ack_of(&a),
            ("0".into(), offset.into(), "1".into(), "".into())
        );
    }
}

#[actix_rt::test]
async fn a_restart_on_the_same_dir_still_knows_the_ids() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[topics]\ndefault_partitions = 2";
    let mut firsts = Vec::new();
    {
        let b = switchyard::start(&config(dir.path(), extra)).await.unwrap();
        let mut c = Client::connect(b.local_addr()).await;
        for i in 0..4 {
            let id = format!("m{i}");
            let a = publish(
                &mut c,
                &[("topic", "t"), ("id", "1"), ("msg_id", &id)],
                b"v",
            )
            .await;
            firsts.push(ack_of(&a));
        }
        let payload = batch_payload([(None, &b"x"[..]), (None, &b"y"[..])]);
        let labels = [
            ("topic", "t"),
            ("id", "b"),
            ("count", "2"),
            ("msg_id", "batch"),
        ];
        firsts.push(ack_of(&publish(&mut c, &labels, &payload).await));
        drop(c);
        b.run_until(async {}).await;
    }
    let b = switchyard::start(&config(dir.path(), extra)).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    for (i, first) in firsts.iter().take(4).enumerate() {
        let id = format!("m{i}");
        let a = publish(
            &mut c,
            &[("topic", "t"), ("id", "2"), ("msg_id", &id)],
            b"v",
        )
        .await;
        let (p, o, n, _) = first.clone();
        assert_eq!(
            ack_of(&a),
            (p, o, n, "true".into()),
            "{id} after the restart"
        );
    }
    let payload = batch_payload([(None, &b"x"[..]), (None, &b"y"[..])]);
    let labels = [
        ("topic", "t"),
        ("id", "b"),
        ("count", "2"),
        ("msg_id", "batch"),
    ];
    let (p, o, n, _) = firsts[4].clone();
    assert_eq!(
        ack_of(&publish(&mut c, &labels, &payload).await),
        (p, o, n, "true".into())
    );
    assert_eq!(stored(&mut c, "t").await, 6);
}

#[actix_rt::test]
async fn a_full_index_evicts_the_oldest_and_counts_it() {
    let (b, _dir, log, _guard) = common::gateway::start_logged("[topics]\ndedup_max_ids = 2").await;
    let mut c = Client::connect(b.local_addr()).await;
    for id in ["a", "b", "c"] {
        let a = publish(&mut c, &[("topic", "e"), ("id", "1"), ("msg_id", id)], b"v").await;
        assert_eq!(ack_of(&a).3, "");
    }
    // `a` was forgotten to make room for `c`: stored again; `c` is still known.
    let a = publish(
        &mut c,
        &[("topic", "e"), ("id", "2"), ("msg_id", "a")],
        b"v",
    )
    .await;
    assert_eq!(ack_of(&a), ("0".into(), "3".into(), "1".into(), "".into()));
    let cc = publish(
        &mut c,
        &[("topic", "e"), ("id", "3"), ("msg_id", "c")],
        b"v",
    )
    .await;
    assert_eq!(ack_of(&cc).3, "true");

    let metrics = common::http::get(b.gateway().http.unwrap(), "/metrics")
        .await
        .text();
    let value = |name: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("switchyard_{name} ")))
            .unwrap_or_else(|| panic!("{name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("dedup_evictions_total"), 2);
    assert_eq!(value("dedup_ids"), 2);
    assert_eq!(value("publish_duplicates_total"), 1);
    // The tree shows the index once a second.
    let want = "topics:registry [msg_ids 2 of 2, 1 duplicates, 2 evicted]";
    for _ in 0..30 {
        b.log_tree("test");
        if log.text().contains(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(log.text().contains(want), "{}", log.text());
    assert!(
        log.text()
            .contains("msg_id index full (topics.dedup_max_ids)"),
        "{}",
        log.text()
    );
}

#[actix_rt::test]
async fn a_msg_id_over_256_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    let long = "x".repeat(257);
    let e = publish(
        &mut c,
        &[("topic", "t"), ("id", "1"), ("msg_id", &long)],
        b"v",
    )
    .await;
    assert!(e.is("topic", "error"), "{e:?}");
    assert_eq!(label(&e, "error"), "label msg_id: 1 to 256 bytes, not 257");
    let ok = "y".repeat(256);
    let e = publish(
        &mut c,
        &[("topic", "t"), ("id", "2"), ("msg_id", &ok)],
        b"v",
    )
    .await;
    assert_eq!(ack_of(&e).1, "0", "nothing stored by the refused one");
}

#[actix_rt::test]
async fn the_http_gateway_takes_a_msg_id_too() {
    use serde_json::json;
    let (b, _dir, _guard) = common::gateway::start("[topics]\ndefault_partitions = 2").await;
    let h = b.gateway().http.unwrap();
    let body = json!({"values": ["a", "b"], "msg_id": "h1"});
    let first = common::http::post_json(h, "/v1/topics/g/messages", &body).await;
    let first = first.json();
    assert_eq!(first["count"], 2);
    assert!(first.get("duplicate").is_none(), "{first}");
    let again = common::http::post_json(h, "/v1/topics/g/messages", &body)
        .await
        .json();
    assert_eq!(
        again,
        json!({"partition": first["partition"], "first_offset": first["first_offset"], "count": 2, "duplicate": true})
    );
    // A raw body names it in the query; the broker port sees the same index.
    let raw = common::http::request(
        h,
        "POST",
        "/v1/topics/g/messages?msg_id=h2",
        &[("content-type", "text/plain")],
        b"raw",
    )
    .await
    .json();
    let mut c = Client::connect(b.local_addr()).await;
    let e = publish(
        &mut c,
        &[("topic", "g"), ("id", "1"), ("msg_id", "h2")],
        b"raw",
    )
    .await;
    assert_eq!(
        (
            label(&e, "partition"),
            label(&e, "offset"),
            label(&e, "duplicate")
        ),
        (
            raw["partition"].to_string(),
            raw["first_offset"].to_string(),
            "true".into()
        )
    );
    assert_eq!(stored(&mut c, "g").await, 3);
    let long = json!({"value": "x", "msg_id": "y".repeat(300)});
    let r = common::http::post_json(h, "/v1/topics/g/messages", &long).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("label msg_id: 1 to 256 bytes, not 300"),
        "{}",
        r.text()
    );
}
