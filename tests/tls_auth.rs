//! Mutual TLS with `[auth]` on the broker port: a verified client certificate that names
//! a configured user logs that user in, with no `auth login`; one that names nobody
//! leaves the peer to log in like any other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use common::auth::section;
use common::tls::{client_config, connect, next_env, Pki};
use common::topic_env;
use tokio::io::AsyncWriteExt;

#[actix_rt::test]
async fn a_client_certificate_naming_a_user_logs_it_in() {
    let pki = Pki::new();
    let auth = section("", &[("ops", "ops-pw", "publish = [\"secure\"]")]);
    let extra = format!("tls = true\n{}\n{auth}", pki.section(true));
    let b = switchyard::start(&common::config(&extra)).await.unwrap();

    // CN=ops: that user, at once; held to its permissions.
    let ops = pki.ca.client("ops", false);
    let mut c = connect(b.local_addr(), client_config(&pki.ca, Some(&ops)))
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    c.write_all(&topic_env(
        "publish",
        &[("topic", "secure"), ("id", "1")],
        b"x",
    ))
    .await
    .unwrap();
    let ack = next_env(&mut c, &mut buf).await;
    assert!(ack.is("topic", "ack"), "{ack:?}");
    c.write_all(&topic_env(
        "publish",
        &[("topic", "other"), ("id", "2")],
        b"x",
    ))
    .await
    .unwrap();
    let refused = next_env(&mut c, &mut buf).await;
    assert!(refused.is("topic", "error"), "{refused:?}");
    assert!(
        refused
            .labels
            .get_str("error")
            .unwrap()
            .contains("permission denied"),
        "{refused:?}"
    );

    // CN=stranger names no user: a login is still required.
    let stranger = pki.ca.client("stranger", false);
    let mut s = connect(b.local_addr(), client_config(&pki.ca, Some(&stranger)))
        .await
        .unwrap();
    let mut sbuf = BytesMut::new();
    s.write_all(&topic_env(
        "publish",
        &[("topic", "secure"), ("id", "1")],
        b"x",
    ))
    .await
    .unwrap();
    let e = next_env(&mut s, &mut sbuf).await;
    assert!(e.is("auth", "error"), "{e:?}");
    assert_eq!(e.labels.get_str("error"), Some("login required"));
}
