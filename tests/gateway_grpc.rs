//! The gateway's gRPC service against the real broker on port 0: every operation
//! through tonic's client, health, and request ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::drivers::*;
use common::gateway::{grpc, health_client, start};
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
