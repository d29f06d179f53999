//! Storage faults seen from a client: a partition whose log cannot be opened is served
//! as failed while every other topic works, and a subscriber or fetch that reaches
//! damaged records is told which offsets, and can go on after them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::segments;
use common::topic_env as env;
use common::topics::{config, label, Client};

const SMALL: &str = "segment_bytes = 4096";

async fn publish(c: &mut Client, topic: &str, partition: &str, n: usize) {
    for i in 0..n {
        let value = format!("record {i:04} {}", "x".repeat(80));
        let id = format!("{topic}-{partition}-{i}");
        c.send(&env(
            "publish",
            &[("topic", topic), ("partition", partition), ("id", &id)],
            value.as_bytes(),
        ))
        .await;
        let ack = c.next().await;
        assert!(ack.is("topic", "ack"), "{ack:?}");
    }
}

#[actix_rt::test]
async fn a_partition_that_cannot_be_opened_does_not_take_the_others_down() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config(&data, "[topics]\ndefault_partitions = 2");
    let b = switchyard::start(&cfg).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    publish(&mut c, "good", "0", 3).await;
    publish(&mut c, "bad", "0", 3).await;
    publish(&mut c, "bad", "1", 3).await;
    drop(c);
    b.run_until(async {}).await;

    // Partition 1 of `bad`: its segment replaced by something that is not a file.
    let p1 = data.join("bad").join("1");
    for s in segments(&p1) {
        std::fs::remove_file(&s).unwrap();
        std::fs::create_dir(&s).unwrap();
    }

    let b = switchyard::start(&cfg).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    publish(&mut c, "good", "0", 1).await;
    publish(&mut c, "bad", "0", 1).await;
    c.send(&env(
        "publish",
        &[("topic", "bad"), ("partition", "1"), ("id", "x")],
        b"v",
    ))
    .await;
    let e = c.next().await;
    assert!(e.is("topic", "error"), "{e:?}");
    let why = label(&e, "error");
    assert!(why.contains("bad/1") && why.contains("failed"), "{why}");
    assert!(
        !why.contains(data.to_str().unwrap()),
        "no server path: {why}"
    );

    c.send(&env("list", &[("id", "l")], b"")).await;
    let list = c.next().await;
    let topics: serde_json::Value = serde_json::from_slice(&list.payload).unwrap();
    let bad = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bad")
        .unwrap();
    assert_eq!(bad["partitions"][0]["state"], "ok");
    assert_eq!(bad["partitions"][0]["next_offset"], 4);
    assert_eq!(bad["partitions"][1]["state"], "failed", "{bad}");
    assert!(bad["partitions"][1]["error"]
        .as_str()
        .unwrap()
        .contains("failed"));
    let tree = b.tree().render();
    assert!(tree.contains("bad/1") && tree.contains("failed"), "{tree}");
    b.run_until(async {}).await;
}

#[actix_rt::test]
async fn a_subscriber_reaching_damage_is_told_the_offsets_and_can_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config(&data, &format!("{SMALL}\n[topics]\ndefault_partitions = 1"));
    let b = switchyard::start(&cfg).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    publish(&mut c, "dmg", "0", 200).await;
    drop(c);
    b.run_until(async {}).await;

    let segs = segments(&data.join("dmg").join("0"));
    assert!(segs.len() > 3, "{segs:?}");
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&segs[1], &bytes).unwrap();

    let b = switchyard::start(&cfg).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&env(
        "subscribe",
        &[("topic", "dmg"), ("from", "earliest"), ("sub", "s")],
        b"",
    ))
    .await;
    assert!(c.next().await.is("topic", "subscribed"));
    let mut got = Vec::new();
    let (first, last) = loop {
        let e = c.next().await;
        if e.is("topic", "deliver") {
            got.push(label(&e, "offset").parse::<u64>().unwrap());
            continue;
        }
        assert!(e.is("topic", "error"), "{e:?}");
        assert_eq!(label(&e, "sub"), "s");
        assert_eq!(label(&e, "topic"), "dmg");
        assert_eq!(label(&e, "partition"), "0");
        assert!(label(&e, "error").contains("unreadable"), "{e:?}");
        break (
            label(&e, "first").parse::<u64>().unwrap(),
            label(&e, "last").parse::<u64>().unwrap(),
        );
    };
    assert_eq!(got, (0..first).collect::<Vec<_>>());
    assert!(last >= first && last < 199);

    // Subscribing again after them reads the rest.
    let from = (last + 1).to_string();
    c.send(&env(
        "subscribe",
        &[("topic", "dmg"), ("from", &from), ("sub", "s2")],
        b"",
    ))
    .await;
    let mut rest = 0;
    while rest < 199 - last {
        let e = c.next().await;
        if e.is("topic", "deliver") && label(&e, "sub") == "s2" {
            rest += 1;
        }
    }
    b.run_until(async {}).await;
}
