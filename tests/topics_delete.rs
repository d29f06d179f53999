//! `topic delete` on the broker port, `DELETE /v1/topics/{t}` and gRPC `DeleteTopic`:
//! the topic's files and its groups' committed offsets are gone, its subscribers and
//! group members are told, a configured topic is refused, and the name can be created
//! again from nothing. A deletion cut short by a crash is finished at the next start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::topic_env as env;
use common::topics::{config, label, Client};
use switchyard_actors::gateway::pb::DeleteTopicRequest;

async fn ask(
    c: &mut Client,
    subject: &str,
    labels: &[(&str, &str)],
    payload: &[u8],
) -> switchyard_codecs::Envelope {
    c.send(&env(subject, labels, payload)).await;
    c.next().await
}

async fn listed(c: &mut Client) -> serde_json::Value {
    let l = ask(c, "list", &[("id", "l")], b"").await;
    assert!(l.is("topic", "list"), "{l:?}");
    assert_eq!(label(&l, "id"), "l");
    serde_json::from_slice(&l.payload).unwrap()
}

#[actix_rt::test]
async fn a_deleted_topic_loses_its_files_offsets_and_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut admin = Client::connect(b.local_addr()).await;
    let r = ask(
        &mut admin,
        "create",
        &[("topic", "gone"), ("partitions", "2"), ("id", "c")],
        b"",
    )
    .await;
    assert!(r.is("topic", "created"), "{r:?}");
    assert_eq!(label(&r, "id"), "c");
    for i in 0..10 {
        let r = ask(
            &mut admin,
            "publish",
            &[("topic", "gone"), ("id", &i.to_string())],
            b"old",
        )
        .await;
        assert!(r.is("topic", "ack"), "{r:?}");
    }
    // A group member that commits, and a plain subscriber.
    let mut member = Client::connect(b.local_addr()).await;
    let r = ask(
        &mut member,
        "subscribe",
        &[("topic", "gone"), ("group", "g"), ("sub", "m"), ("id", "s")],
        b"",
    )
    .await;
    assert!(r.is("topic", "subscribed"), "{r:?}");
    // Each commit is answered once it is stored; the listing below is asked after.
    let (mut got, mut committed) = (0, 0);
    while got < 10 || committed < 10 {
        let d = member.next().await;
        committed += usize::from(d.is("topic", "committed"));
        if d.is("topic", "deliver") {
            got += 1;
            let next = (label(&d, "offset").parse::<u64>().unwrap() + 1).to_string();
            member
                .send(&env(
                    "commit",
                    &[
                        ("topic", "gone"),
                        ("group", "g"),
                        ("partition", &label(&d, "partition")),
                        ("offset", &next),
                    ],
                    b"",
                ))
                .await;
        }
    }
    let mut plain = Client::connect(b.local_addr()).await;
    let r = ask(
        &mut plain,
        "subscribe",
        &[("topic", "gone"), ("sub", "p"), ("from", "latest")],
        b"",
    )
    .await;
    assert!(r.is("topic", "subscribed"), "{r:?}");
    let t = listed(&mut admin).await;
    assert_eq!(t[0]["groups"]["g"].as_object().unwrap().len(), 2, "{t}");
    assert!(dir.path().join("gone/groups.json").exists());

    let r = ask(&mut admin, "delete", &[("topic", "gone"), ("id", "d")], b"").await;
    assert!(r.is("topic", "deleted"), "{r:?}");
    assert_eq!(
        (label(&r, "topic"), label(&r, "id")),
        ("gone".into(), "d".into())
    );
    assert!(
        !dir.path().join("gone").exists(),
        "the topic's folder is removed"
    );
    assert_eq!(listed(&mut admin).await, serde_json::json!([]));

    // Each subscriber is told once, naming its subscription.
    for (c, sub) in [(&mut member, "m"), (&mut plain, "p")] {
        let mut e = c.next().await;
        while e.is("topic", "committed") || e.is("topic", "assigned") {
            e = c.next().await;
        }
        assert!(e.is("topic", "error"), "{e:?}");
        assert_eq!(label(&e, "sub"), sub);
        assert_eq!(label(&e, "error"), "topic `gone` was deleted");
        // Its subscription is gone: unsubscribing it is an error, the connection lives.
        let r = ask(c, "unsubscribe", &[("sub", sub), ("id", "u")], b"").await;
        assert_eq!(label(&r, "error"), format!("no subscription `{sub}`"));
    }

    // The name starts over: offsets from 0, and the group has no commit to resume.
    let r = ask(
        &mut admin,
        "publish",
        &[("topic", "gone"), ("id", "n")],
        b"new",
    )
    .await;
    assert_eq!(
        (label(&r, "partition"), label(&r, "offset")),
        ("0".into(), "0".into())
    );
    let t = listed(&mut admin).await;
    assert_eq!(t[0]["groups"], serde_json::json!({}), "{t}");
    let mut again = Client::connect(b.local_addr()).await;
    let r = ask(
        &mut again,
        "subscribe",
        &[("topic", "gone"), ("group", "g"), ("sub", "a")],
        b"",
    )
    .await;
    assert!(r.is("topic", "subscribed"), "{r:?}");
    let mut d = again.next().await;
    while !d.is("topic", "deliver") {
        d = again.next().await;
    }
    assert_eq!(
        (label(&d, "offset"), &d.payload[..]),
        ("0".into(), &b"new"[..])
    );

    // Unknown topics and configured ones are refused; the connection stays usable.
    let r = ask(
        &mut admin,
        "delete",
        &[("topic", "never"), ("id", "x")],
        b"",
    )
    .await;
    assert_eq!(label(&r, "error"), "unknown topic `never`");
    assert_eq!(label(&r, "id"), "x");
    b.run_until(async {}).await;
}

#[actix_rt::test]
async fn a_configured_topic_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[[topic]]\nname = \"fixed\"\npartitions = 1\n";
    let b = switchyard::start(&config(dir.path(), extra)).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    let r = ask(&mut c, "delete", &[("topic", "fixed"), ("id", "1")], b"").await;
    assert_eq!(
        label(&r, "error"),
        "topic `fixed` is configured in [[topic]]; remove it from the config first"
    );
    assert!(dir.path().join("fixed").exists());
    b.run_until(async {}).await;
}

#[actix_rt::test]
async fn a_deletion_cut_short_is_finished_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // What a crash between the rename and the removal leaves.
    let left = dir.path().join(".trash/t.1.0/0");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("00000000000000000000.log"), b"x").unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    assert!(!dir.path().join(".trash").exists());
    let mut c = Client::connect(b.local_addr()).await;
    assert_eq!(listed(&mut c).await, serde_json::json!([]));
    b.run_until(async {}).await;
}

#[actix::test]
async fn delete_over_http_and_grpc() {
    use common::http::{post_json, request};
    let (b, dir, _g) = common::gateway::start("").await;
    let h = b.gateway().http.unwrap();
    for t in ["web", "rpc"] {
        let r = post_json(
            h,
            &format!("/v1/topics/{t}/messages"),
            &serde_json::json!({"value": "v"}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = request(h, "DELETE", "/v1/topics/web", &[], b"").await;
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"deleted": "web"}))
    );
    let r = request(h, "DELETE", "/v1/topics/web", &[], b"").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"], "unknown topic `web`");
    assert!(!dir.path().join("data/web").exists() && !dir.path().join("web").exists());

    let mut g = common::gateway::grpc(&b).await;
    g.delete_topic(DeleteTopicRequest { name: "rpc".into() })
        .await
        .unwrap();
    let e = g
        .delete_topic(DeleteTopicRequest { name: "rpc".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let r = common::http::get(h, "/v1/topics").await;
    assert_eq!(r.json()["topics"], serde_json::json!([]));
    b.run_until(async {}).await;
}
