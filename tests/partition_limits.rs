//! `topics.max_partitions_per_topic` and `topics.max_partitions` (issue 12, "file
//! descriptors"): every way a topic is made (client create, auto-create, HTTP, gRPC,
//! `[[topic]]`) is held to them, with an error naming the limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::topic_env as env;
use common::topics::{config, label, Client};

use common::http::post_json;
use serde_json::json;
use switchyard_actors::gateway::pb::CreateTopicRequest;

const LIMITS: &str =
    "[topics]\nmax_partitions_per_topic = 8\nmax_partitions = 12\ndefault_partitions = 4";

async fn create(c: &mut Client, topic: &str, partitions: &str) -> switchyard_codecs::Envelope {
    c.send(&env(
        "create",
        &[("topic", topic), ("partitions", partitions), ("id", topic)],
        b"",
    ))
    .await;
    c.next().await
}

#[actix_rt::test]
async fn creates_on_the_broker_port_and_auto_creates_are_held_to_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), LIMITS))
        .await
        .unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    let e = create(&mut c, "huge", "4096").await;
    assert!(e.is("topic", "error"), "{e:?}");
    assert_eq!(
        label(&e, "error"),
        "topic `huge` asks for 4096 partitions, over topics.max_partitions_per_topic (8)"
    );
    assert!(create(&mut c, "eight", "8").await.is("topic", "created"));
    let e = create(&mut c, "five", "5").await;
    assert_eq!(
        label(&e, "error"),
        "topic `five` needs 5 partitions and 8 of topics.max_partitions (12) are in use"
    );
    // Auto-create takes default_partitions (4): one more fits, the next does not.
    c.send(&env("publish", &[("topic", "auto1"), ("id", "1")], b"v"))
        .await;
    assert!(c.next().await.is("topic", "ack"));
    c.send(&env("publish", &[("topic", "auto2"), ("id", "2")], b"v"))
        .await;
    let e = c.next().await;
    assert!(e.is("topic", "error"), "{e:?}");
    assert_eq!(
        label(&e, "error"),
        "topic `auto2` needs 4 partitions and 12 of topics.max_partitions (12) are in use"
    );
    // Nothing was made for the refused ones; the existing topics still work.
    assert!(!dir.path().join("huge").exists() && !dir.path().join("auto2").exists());
    assert!(create(&mut c, "eight", "8").await.is("topic", "created"));
    c.send(&env("publish", &[("topic", "eight"), ("id", "3")], b"v"))
        .await;
    assert!(c.next().await.is("topic", "ack"));
    b.run_until(async {}).await;
}

#[actix::test]
async fn http_and_grpc_creates_are_held_to_the_limits() {
    let (b, _dir, _g) = common::gateway::start(LIMITS).await;
    let h = b.gateway().http.unwrap();
    let r = post_json(h, "/v1/topics", &json!({"name": "huge", "partitions": 9})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("over topics.max_partitions_per_topic (8)"));
    let r = post_json(h, "/v1/topics", &json!({"name": "a", "partitions": 8})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = post_json(h, "/v1/topics", &json!({"name": "b", "partitions": 8})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.json()["error"],
        "topic `b` needs 8 partitions and 8 of topics.max_partitions (12) are in use"
    );
    let mut g = common::gateway::grpc(&b).await;
    let e = g
        .create_topic(CreateTopicRequest {
            name: "g".into(),
            partitions: Some(9),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let e = g
        .create_topic(CreateTopicRequest {
            name: "g".into(),
            partitions: Some(5),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("topics.max_partitions (12)"), "{e:?}");
    b.run_until(async {}).await;
}

#[test]
fn configured_topics_are_held_to_the_limits() {
    let parse =
        |body: &str| switchyard::Config::parse(&format!("{LIMITS}\n{body}"), "c.toml").map(|_| ());
    let e = parse("[[topic]]\nname = \"a\"\npartitions = 9\n").unwrap_err();
    assert_eq!(e.line.map(|l| l.0), Some(7), "{e}");
    assert!(
        e.message
            .contains("expected at most topics.max_partitions_per_topic (8), got 9"),
        "{e}"
    );
    let e =
        parse("[[topic]]\nname = \"a\"\npartitions = 8\n[[topic]]\nname = \"b\"\npartitions = 8\n")
            .unwrap_err();
    assert!(e.message.contains("over topics.max_partitions (12)"), "{e}");
    let e = switchyard::Config::parse(
        "[topics]\nmax_partitions_per_topic = 2\ndefault_partitions = 3\n",
        "c.toml",
    )
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("topics.default_partitions"), "{e}");
}

#[actix_rt::test]
async fn a_configured_topic_over_the_limit_with_topics_on_disk_is_left_out_not_the_registry() {
    let (log, _guard) = common::Log::capture();
    let dir = tempfile::tempdir().unwrap();
    {
        let b = switchyard::start(&config(dir.path(), LIMITS))
            .await
            .unwrap();
        let mut c = Client::connect(b.local_addr()).await;
        assert!(create(&mut c, "old", "8").await.is("topic", "created"));
        b.run_until(async {}).await;
    }
    let with_topic = format!("{LIMITS}\n[[topic]]\nname = \"new\"\npartitions = 8\n");
    let b = switchyard::start(&config(dir.path(), &with_topic))
        .await
        .unwrap();
    log.wait_for(&[
        "configured topic not created",
        "topic=new",
        "max_partitions (12)",
    ])
    .await;
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&env("publish", &[("topic", "old"), ("id", "1")], b"v"))
        .await;
    assert!(c.next().await.is("topic", "ack"));
    b.run_until(async {}).await;
}
