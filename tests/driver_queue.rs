//! A driver's input is bounded in bytes, not only in frames: calls to a driver that
//! stops reading, or to one that is still starting, are answered at once with an error
//! once `queue_bytes` are held for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::drivers::*;
use common::Log;
use switchyard_codecs::Envelope;

const MB: usize = 1_000_000;

fn call(id: usize, feature: &str) -> Envelope {
    Envelope::new("rpc", "call")
        .with_label("rpcID", id.to_string())
        .with_label("feature", feature.to_string())
        .with_label("method", "echo")
        .with_label("timeout", "60s")
        .with_payload(vec![b'x'; MB])
}

/// Sends `n` calls of 1 MB and collects the returns that come within a few seconds.
async fn flood(c: &mut Tcp, feature: &str, first: usize, n: usize) -> Vec<Envelope> {
    for id in first..first + n {
        c.send(&call(id, feature)).await;
    }
    let mut got = Vec::new();
    while let Some(r) = c.next(Duration::from_secs(5)).await {
        got.push(r);
    }
    got
}

#[actix::test]
async fn calls_past_queue_bytes_are_answered_at_once() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let body = driver("deaf", "deaf", "")
        + &driver(
            "slow",
            "silent",
            "start_timeout_ms = 120000\nqueue_bytes = 3000000\n",
        );
    let text =
        config_text(dir.path(), &body).replace("[drivers]\n", "[drivers]\nqueue_bytes = 4194304\n");
    let b = switchyard::start(&switchyard::Config::parse(&text, "test").unwrap())
        .await
        .unwrap();
    wait_alive(&b, "deaf").await;
    let mut c = Tcp::connect(b.local_addr()).await;
    // Its first call is answered; then it reads no more.
    let r = c
        .call(
            &[
                ("rpcID", "0"),
                ("feature", "driver:deaf"),
                ("method", "echo"),
            ],
            b"hi",
        )
        .await;
    assert_eq!(&r.payload[..], b"hi");

    // 4 MiB plus what the pipe takes is held; every other call is refused at once.
    let got = flood(&mut c, "driver:deaf", 1, 40).await;
    let full: Vec<_> = got
        .iter()
        .filter_map(|r| r.labels.get_str("error"))
        .filter(|e| e.contains("driver input queue full") && e.contains("queue_bytes is 4194304"))
        .collect();
    assert!(full.len() >= 30, "{} refused of 40: {got:?}", full.len());
    assert_eq!(got.len(), full.len(), "{got:?}");

    // A starting driver holds calls for it up to its own queue_bytes: 3,000,000 bytes
    // take two calls of 1 MB and their headers, not three.
    let got = flood(&mut c, "driver:slow", 100, 10).await;
    let full = got
        .iter()
        .filter(|r| {
            r.labels
                .get_str("error")
                .is_some_and(|e| e == "feature driver:slow is starting and its queue is full")
        })
        .count();
    assert_eq!(full, 8, "{got:?}");

    // The broker answers as ever.
    let r = c
        .call(
            &[("rpcID", "p"), ("feature", "broker"), ("method", "ping")],
            b"",
        )
        .await;
    assert_eq!(&r.payload[..], b"pong");
    b.run_until(async {}).await;
}
