//! A partition moving between live group members is handed off: the new member starts
//! where the old one's deliveries ended once the old one has committed them. An old
//! member that does not commit within the wait, or leaves, hands off at the committed
//! offset (read again, never lost).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

mod common;
use common::topic_env as env;
use common::topics::{config, label, Client};

async fn until_assigned(c: &mut Client, want: &str) {
    loop {
        let e = c.next().await;
        if e.is("topic", "assigned") && label(&e, "partitions") == want {
            return;
        }
    }
}

async fn next_delivery(c: &mut Client) -> (u32, u64) {
    loop {
        let e = c.next().await;
        if e.is("topic", "deliver") {
            return (
                label(&e, "partition").parse().unwrap(),
                label(&e, "offset").parse().unwrap(),
            );
        }
    }
}

/// A member of group `g` on `jobs` (2 partitions), and the records 0..n it was sent of
/// each partition (read, not committed).
async fn member(addr: std::net::SocketAddr, sub: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.send(&env(
        "subscribe",
        &[("topic", "jobs"), ("group", "g"), ("sub", sub)],
        b"",
    ))
    .await;
    assert!(c.next().await.is("topic", "subscribed"));
    c
}

async fn setup() -> (switchyard::Broker, tempfile::TempDir, Client, Client) {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(
        dir.path(),
        "[[topic]]\nname = \"jobs\"\npartitions = 2",
    ))
    .await
    .unwrap();
    let mut p = Client::connect(b.local_addr()).await;
    let mut a = member(b.local_addr(), "a").await;
    until_assigned(&mut a, "0,1").await;
    for i in 0..4 {
        p.send(&env(
            "publish",
            &[("topic", "jobs"), ("id", &i.to_string())],
            b"x",
        ))
        .await;
        assert!(p.next().await.is("topic", "ack"));
    }
    // A was sent offsets 0 and 1 of each partition and commits only offset 0.
    for _ in 0..4 {
        next_delivery(&mut a).await;
    }
    for part in ["0", "1"] {
        a.send(&env(
            "commit",
            &[
                ("topic", "jobs"),
                ("group", "g"),
                ("partition", part),
                ("offset", "1"),
            ],
            b"",
        ))
        .await;
        assert!(a.next().await.is("topic", "committed"));
    }
    (b, dir, p, a)
}

#[actix_rt::test]
async fn an_old_member_that_does_not_commit_hands_off_at_the_commit_after_the_wait() {
    let (b, _dir, _p, mut a) = setup().await;
    let started = Instant::now();
    let mut bm = member(b.local_addr(), "b").await;
    until_assigned(&mut a, "0").await;
    // B waits for A to commit offset 1 of partition 1; A never does. (The client's
    // reads time out after 5 s: let most of the wait pass before reading.)
    tokio::time::sleep(Duration::from_secs(4)).await;
    until_assigned(&mut bm, "1").await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(4500),
        "handed off after {waited:?}, before the wait"
    );
    // At the committed offset: offset 1, which A was sent, comes again (at least once).
    assert_eq!(next_delivery(&mut bm).await, (1, 1));
    b.run_until(async {}).await;
}

#[actix_rt::test]
async fn an_old_member_that_leaves_mid_handoff_hands_off_at_the_commit_at_once() {
    let (b, _dir, _p, mut a) = setup().await;
    let mut bm = member(b.local_addr(), "b").await;
    until_assigned(&mut a, "0").await;
    let left = Instant::now();
    drop(a);
    until_assigned(&mut bm, "0,1").await;
    assert!(
        left.elapsed() < Duration::from_secs(2),
        "{:?}",
        left.elapsed()
    );
    let mut got = vec![next_delivery(&mut bm).await, next_delivery(&mut bm).await];
    got.sort();
    assert_eq!(got, [(0, 1), (1, 1)], "from the committed offsets");
    b.run_until(async {}).await;
}

/// Reads deliveries (skipping other frames) until `n` have come; returns
/// (partition, offset) pairs.
async fn deliveries(c: &mut Client, n: usize) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let e = c.next().await;
        if e.is("topic", "deliver") {
            out.push((
                label(&e, "partition").parse().unwrap(),
                label(&e, "offset").parse().unwrap(),
            ));
        }
    }
    out
}

async fn assigned(c: &mut Client) -> String {
    loop {
        let e = c.next().await;
        if e.is("topic", "assigned") {
            return label(&e, "partitions");
        }
    }
}

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
async fn a_group_rebalances_on_join_and_leave_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(
        dir.path(),
        "[[topic]]\nname = \"jobs\"\npartitions = 4",
    ))
    .await
    .unwrap();
    let mut p = Client::connect(b.local_addr()).await;
    publish_n(&mut p, "jobs", 8, "a").await; // two per partition, round robin

    let mut a = Client::connect(b.local_addr()).await;
    a.send(&env(
        "subscribe",
        &[("topic", "jobs"), ("group", "g"), ("sub", "a")],
        b"",
    ))
    .await;
    assert!(a.next().await.is("topic", "subscribed"));
    assert_eq!(assigned(&mut a).await, "0,1,2,3");
    assert_eq!(deliveries(&mut a, 8).await.len(), 8);
    for part in 0..4 {
        a.send(&env(
            "commit",
            &[
                ("topic", "jobs"),
                ("group", "g"),
                ("partition", &part.to_string()),
                ("offset", "2"),
            ],
            b"",
        ))
        .await;
        assert!(a.next().await.is("topic", "committed"));
    }
    publish_n(&mut p, "jobs", 4, "b").await; // offset 2 in each partition
    let mut got_a = deliveries(&mut a, 4).await;
    got_a.sort();
    assert_eq!(got_a, vec![(0, 2), (1, 2), (2, 2), (3, 2)]);

    // B joins. Partitions 1 and 3 move from A, which is alive: they are handed off. B
    // gets them only once A has committed what it was sent of them (offset 2), so no
    // record is read twice.
    let mut bm = Client::connect(b.local_addr()).await;
    bm.send(&env(
        "subscribe",
        &[("topic", "jobs"), ("group", "g"), ("sub", "b")],
        b"",
    ))
    .await;
    assert!(bm.next().await.is("topic", "subscribed"));
    assert_eq!(assigned(&mut bm).await, "", "nothing until the hand-off");
    assert_eq!(assigned(&mut a).await, "0,2");
    for part in ["1", "3"] {
        a.send(&env(
            "commit",
            &[
                ("topic", "jobs"),
                ("group", "g"),
                ("partition", part),
                ("offset", "3"),
            ],
            b"",
        ))
        .await;
        assert!(a.next().await.is("topic", "committed"));
    }
    // Each partition comes as its hand-off completes.
    assert_eq!(assigned(&mut bm).await, "1");
    assert_eq!(assigned(&mut bm).await, "1,3");
    publish_n(&mut p, "jobs", 4, "c").await; // offset 3 in each partition
    let mut got_b = deliveries(&mut bm, 2).await;
    got_b.sort();
    assert_eq!(
        got_b,
        vec![(1, 3), (3, 3)],
        "B starts where A's deliveries ended"
    );
    let mut got_a = deliveries(&mut a, 2).await;
    got_a.sort();
    assert_eq!(got_a, vec![(0, 3), (2, 3)]);

    // B leaves without committing: A gets 1 and 3 back from the committed offset, so
    // what B saw comes again (at least once) and nothing is skipped.
    drop(bm);
    let a_parts = loop {
        let parts = assigned(&mut a).await;
        if parts == "0,1,2,3" {
            break parts;
        }
    };
    assert_eq!(a_parts, "0,1,2,3");
    let mut seen: Vec<(u32, u64)> = Vec::new();
    while !([(1, 3), (3, 3)].iter().all(|x| seen.contains(x))) {
        seen.extend(deliveries(&mut a, 1).await);
    }
    assert!(seen.iter().all(|(_, o)| *o == 3), "{seen:?}");

    // Committed offsets survive a restart.
    drop(a);
    b.run_until(async {}).await;
    let b = switchyard::start(&config(
        dir.path(),
        "[[topic]]\nname = \"jobs\"\npartitions = 4",
    ))
    .await
    .unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&env("list", &[], b"")).await;
    let topics: serde_json::Value = serde_json::from_slice(&c.next().await.payload).unwrap();
    let jobs = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "jobs")
        .unwrap();
    assert_eq!(jobs["groups"]["g"]["3"], 3, "{jobs}");
}
