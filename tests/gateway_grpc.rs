//! The gateway's gRPC service against the real broker on port 0: every operation
//! through tonic's client, health, and request ids; a cancelled group stream that
//! leaves its group at once and loses nothing to it; resuming after a position.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::drivers::*;
use common::gateway::*;
use switchyard_actors::gateway::pb::*;

#[actix::test]
async fn every_operation_over_grpc() {
    let (b, _dir, _g) = start("").await;
    wait_alive(&b, "conf").await;
    let mut c = grpc(&b).await;
    c.create_topic(CreateTopicRequest {
        name: "events".into(),
        partitions: Some(1),
        fsync: Some("never".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    // The options took: asking again for another fsync is refused.
    let clash = CreateTopicRequest {
        name: "events".into(),
        fsync: Some("always".into()),
        ..Default::default()
    };
    let e = c.create_topic(clash).await.unwrap_err();
    assert!(
        e.message().contains("exists with fsync never, not always"),
        "{e:?}"
    );
    let p = c
        .publish(PublishRequest {
            topic: "events".into(),
            key: Some(b"k".to_vec()),
            partition: None,
            values: vec![b"x".to_vec(), b"y".to_vec()],
        })
        .await
        .unwrap();
    assert!(p.metadata().get("x-request-id").is_some());
    assert_eq!((p.get_ref().first_offset, p.get_ref().count), (0, 2));
    let f = c
        .fetch(FetchRequest {
            topic: "events".into(),
            partition: 0,
            from: 1,
            max: 10,
            max_bytes: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.records.len(), 1);
    assert_eq!(f.records[0].value, b"y");
    assert_eq!(f.records[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(f.next, 2);
    let l = c
        .list_topics(ListTopicsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.topics[0].name, "events");
    assert_eq!(l.topics[0].fsync, "never");
    assert_eq!(l.topics[0].partitions[0].next_offset, 2);
    let r = c
        .call_driver(CallDriverRequest {
            driver: "conf".into(),
            method: "decrypt".into(),
            params: b"world".to_vec(),
            timeout_ms: None,
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().result, b"decrypted:world");
    let d = c
        .list_drivers(ListDriversRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (d.drivers[0].name.as_str(), d.drivers[0].state.as_str()),
        ("conf", "alive")
    );
    let t = c.tree(TreeRequest {}).await.unwrap().into_inner();
    assert!(t.json.contains("root/drivers:host/driver:conf"));
    // Errors carry proper status codes.
    let e = c
        .fetch(FetchRequest {
            topic: "nope".into(),
            partition: 0,
            from: 0,
            max: 1,
            max_bytes: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = c
        .call_driver(CallDriverRequest {
            driver: "conf".into(),
            method: "sleep".into(),
            params: br#"{"seconds":2}"#.to_vec(),
            timeout_ms: Some(200),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e}");
    let e = c
        .publish(PublishRequest {
            topic: "events".into(),
            key: None,
            partition: None,
            values: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // Health.
    let mut health = health_client(&b).await;
    let mut serving = false;
    for _ in 0..100 {
        let s = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "switchyard.v1.Broker".into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if s == Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32) {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(serving);
    b.run_until(async {}).await;
}

fn sub(topic: &str, group: Option<&str>, after: &str) -> SubscribeRequest {
    SubscribeRequest {
        topic: topic.into(),
        partition: None,
        from: "earliest".into(),
        group: group.map(str::to_string),
        after: after.into(),
    }
}

/// Reads records until every partition below `partitions` has reached offset `end - 1`.
async fn read_to_end(
    s: &mut tonic::Streaming<Record>,
    partitions: u32,
    end: u64,
) -> BTreeMap<u32, Vec<u64>> {
    let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    while (0..partitions).any(|p| got.get(&p).and_then(|v| v.last()) != Some(&(end - 1))) {
        let r = tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .expect("the stream went on")
            .unwrap()
            .expect("a record");
        assert_eq!(
            r.value,
            format!("p{}-{}", r.partition, r.offset).into_bytes()
        );
        got.entry(r.partition).or_default().push(r.offset);
    }
    got
}

#[actix::test]
async fn a_cancelled_group_stream_leaves_at_once_and_loses_nothing() {
    let (b, _dir, log, _g) = start_logged("").await;
    let h = b.gateway().http.unwrap();
    create_topic(h, "glossless", 2).await;
    for p in 0..2 {
        publish_range(h, "glossless", p, 0..50).await;
    }
    let mut first = grpc(&b).await;
    let mut a = first
        .subscribe(sub("glossless", Some("g"), ""))
        .await
        .unwrap()
        .into_inner();
    read_to_end(&mut a, 2, 50).await;
    wait_committed(h, "glossless", "g", &[(0, 50), (1, 50)]).await;
    for p in 0..2 {
        publish_range(h, "glossless", p, 50..250).await;
    }
    let mut read_by_a = BTreeSet::new();
    for _ in 0..10 {
        let r = a.message().await.unwrap().unwrap();
        read_by_a.insert((r.partition, r.offset));
    }
    // Cancelled (RST_STREAM) on a connection that stays open.
    let cancelled = Instant::now();
    drop(a);
    while !log
        .text()
        .lines()
        .any(|l| l.contains("group empty") && l.contains("group=g "))
    {
        assert!(
            cancelled.elapsed() < Duration::from_secs(2),
            "the cancelled stream is still in its group"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut next = grpc(&b).await;
    let mut s = next
        .subscribe(sub("glossless", Some("g"), ""))
        .await
        .unwrap()
        .into_inner();
    let got = read_to_end(&mut s, 2, 250).await;
    covers_the_rest(&got, &read_by_a, 50, 250, 2);
    drop(first);
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_stream_resumes_after_a_position() {
    let (b, _dir, _g) = start("").await;
    let h = b.gateway().http.unwrap();
    create_topic(h, "gresume", 3).await;
    for p in 0..3 {
        publish_range(h, "gresume", p, 0..10).await;
    }
    let mut c = grpc(&b).await;
    // Partition 0 after 3, partition 2 after 9 (nothing left), partition 1 from `from`.
    let mut s = c
        .subscribe(sub("gresume", None, "0:3,2:9"))
        .await
        .unwrap()
        .into_inner();
    let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for _ in 0..16 {
        let r = s.message().await.unwrap().unwrap();
        got.entry(r.partition).or_default().push(r.offset);
    }
    assert_eq!(got[&0], (4..10).collect::<Vec<_>>());
    assert_eq!(got[&1], (0..10).collect::<Vec<_>>());
    assert!(!got.contains_key(&2));
    publish_range(h, "gresume", 2, 10..11).await;
    let r = s.message().await.unwrap().unwrap();
    assert_eq!((r.partition, r.offset), (2, 10));
    let e = c.subscribe(sub("gresume", None, "0:x")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    b.run_until(async {}).await;
}
