//! An envelope over `broker.max_frame_bytes` (up to `broker.max_skip_bytes`) is skipped
//! without being buffered and answered with an error; the connection stays usable.
//! One announced past `max_skip_bytes` still closes the connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use common::topics::{label, Client};
use common::{closed_by_peer, connect, eventually, topic_env as env, Log};
use switchyard_codecs::Envelope;

const LIMITS: &str = "max_frame_bytes = 65536\nmax_skip_bytes = 4194304";

#[actix_rt::test]
async fn an_oversize_publish_gets_an_error_and_the_connection_goes_on() {
    let (log, _guard) = Log::capture();
    let b = common::start(LIMITS).await;
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&env("publish", &[("topic", "t"), ("id", "1")], b"small"))
        .await;
    assert_eq!(label(&c.next().await, "offset"), "0");
    let first = env("publish", &[("topic", "t"), ("id", "1")], b"small").len();

    // 1 MiB of payload, written in pieces as a real client would.
    let big = env(
        "publish",
        &[("id", "big"), ("topic", "t")],
        &vec![b'x'; 1 << 20],
    );
    for piece in big.chunks(100_000) {
        c.send(piece).await;
    }
    let e = c.next().await;
    assert!(e.is("topic", "error"), "{e:?}");
    assert_eq!(label(&e, "id"), "big");
    assert_eq!(
        label(&e, "error"),
        format!(
            "frame of {} bytes is over broker.max_frame_bytes (65536)",
            big.len()
        )
    );
    let line = log
        .wait_for(&["oversize frame skipped", &format!("offset={first}")])
        .await;
    assert!(line.contains("peer="), "{line}");

    // The next publish on the same connection is read as if nothing had happened,
    // and nothing of the oversize one was stored.
    c.send(&env("publish", &[("topic", "t"), ("id", "2")], b"after"))
        .await;
    let ack = c.next().await;
    assert!(ack.is("topic", "ack"), "{ack:?}");
    assert_eq!(label(&ack, "offset"), "1");
    assert_eq!(b.stats().snapshot().oversize_frames, 1);
    assert_eq!(b.stats().snapshot().malformed_frames, 0);
}

#[actix_rt::test]
async fn an_oversize_rpc_call_is_returned_with_an_error() {
    let b = common::start(LIMITS).await;
    let mut c = Client::connect(b.local_addr()).await;
    let call = Envelope::new("rpc", "call")
        .with_label("rpcID", "77")
        .with_label("feature", "broker")
        .with_label("method", "ping")
        .with_payload(vec![b'{'; 100_000]);
    let mut buf = BytesMut::new();
    call.encode(&mut buf).unwrap();
    c.send(&buf).await;
    let ret = c.next().await;
    assert!(ret.is("rpc", "return"), "{ret:?}");
    assert_eq!(label(&ret, "rpcID"), "77");
    assert!(label(&ret, "error").contains("is over broker.max_frame_bytes"));
}

#[actix_rt::test]
async fn past_max_skip_bytes_the_connection_is_closed() {
    let (log, _guard) = Log::capture();
    let b = common::start(LIMITS).await;
    let mut c = connect(b.local_addr()).await;
    use tokio::io::AsyncWriteExt;
    c.write_all(b"topic publish 1 5000000\nid 1\n7")
        .await
        .unwrap();
    assert!(closed_by_peer(&mut c).await);
    log.wait_for(&["malformed frame", "frame of at least"])
        .await;
    eventually("the malformed frame is counted", || {
        b.stats().snapshot().malformed_frames == 1
    })
    .await;
}
