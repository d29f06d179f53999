//! Where a consumer group's partition starts when the group has committed nothing for
//! it: at the `from` of the member it goes to, `earliest` when `from` is absent or
//! `committed`; once something is committed, at the commit whatever `from` says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::topic_env as env;
use common::topics::{config, label, Client};

async fn publish(c: &mut Client, value: &str) -> u64 {
    c.send(&env(
        "publish",
        &[("topic", "jobs"), ("id", value)],
        value.as_bytes(),
    ))
    .await;
    let ack = c.next().await;
    assert!(ack.is("topic", "ack"), "{ack:?}");
    label(&ack, "offset").parse().unwrap()
}

/// Joins `group` with `from` (if any) and returns the member once it is assigned.
async fn join(addr: std::net::SocketAddr, group: &str, from: Option<&str>) -> Client {
    let mut c = Client::connect(addr).await;
    let mut labels = vec![("topic", "jobs"), ("group", group)];
    labels.extend(from.map(|f| ("from", f)));
    c.send(&env("subscribe", &labels, b"")).await;
    let ok = c.next().await;
    assert!(ok.is("topic", "subscribed"), "{ok:?}");
    loop {
        if c.next().await.is("topic", "assigned") {
            return c;
        }
    }
}

async fn first_offset(c: &mut Client) -> u64 {
    loop {
        let e = c.next().await;
        if e.is("topic", "deliver") {
            return label(&e, "offset").parse().unwrap();
        }
    }
}

#[actix_rt::test]
async fn a_group_without_commits_starts_where_from_says_and_earliest_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "[[topic]]\nname = \"jobs\""))
        .await
        .unwrap();
    let addr = b.local_addr();
    let mut p = Client::connect(addr).await;
    for v in ["a", "b", "c"] {
        publish(&mut p, v).await;
    }
    for (group, from) in [
        ("no-from", None),
        ("committed", Some("committed")),
        ("earliest", Some("earliest")),
    ] {
        let mut m = join(addr, group, from).await;
        assert_eq!(
            first_offset(&mut m).await,
            0,
            "group {group}, from {from:?}"
        );
    }
    let mut late = join(addr, "latest", Some("latest")).await;
    assert_eq!(publish(&mut p, "d").await, 3);
    assert_eq!(first_offset(&mut late).await, 3);

    // Once the group has committed, `from` no longer matters.
    late.send(&env(
        "commit",
        &[
            ("topic", "jobs"),
            ("group", "latest"),
            ("partition", "0"),
            ("offset", "1"),
        ],
        b"",
    ))
    .await;
    while !late.next().await.is("topic", "committed") {}
    drop(late);
    let mut again = join(addr, "latest", Some("latest")).await;
    assert_eq!(first_offset(&mut again).await, 1);

    // An offset is refused in a group: the group's commits say where it is.
    let mut c = Client::connect(addr).await;
    c.send(&env(
        "subscribe",
        &[("topic", "jobs"), ("group", "x"), ("from", "2")],
        b"",
    ))
    .await;
    let e = c.next().await;
    assert!(e.is("topic", "error"), "{e:?}");
    assert!(label(&e, "error").contains("committed offsets"), "{e:?}");
    b.run_until(async {}).await;
}
