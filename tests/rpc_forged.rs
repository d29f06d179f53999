//! A return is taken only from the feature its call was routed to: a third connection
//! that writes the right `caller` and `rpcID` labels cannot answer another's call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::drivers::*;
use common::http;
use common::Log;
use switchyard::Broker;
use switchyard_codecs::Envelope;

fn ret(caller: &str, id: &str, payload: &[u8]) -> Envelope {
    Envelope::new("rpc", "return")
        .with_label("caller", caller.to_string())
        .with_label("rpcID", id.to_string())
        .with_payload(payload.to_vec())
}

/// Waits until the host has counted `n` forged returns.
async fn forged(b: &Broker, n: u64) {
    for _ in 0..500 {
        if b.driver_stats().await.rpc.forged_returns >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("forged returns never counted: {:?}", b.driver_stats().await);
}

/// A client's own feature, as the broker names it: the `caller` of its returns.
async fn feature_of(c: &mut Tcp) -> String {
    let r = c
        .call(
            &[("rpcID", "me"), ("feature", "broker"), ("method", "ping")],
            b"",
        )
        .await;
    r.labels.get_str("caller").unwrap().to_string()
}

#[actix::test]
async fn a_third_client_cannot_answer_a_call_to_a_client_or_a_driver() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &driver("conf", "conformance", "")))
        .await
        .unwrap();
    wait_alive(&b, "conf").await;
    let (mut a, mut callee, mut thief) = (
        Tcp::connect(b.local_addr()).await,
        Tcp::connect(b.local_addr()).await,
        Tcp::connect(b.local_addr()).await,
    );
    let a_feature = feature_of(&mut a).await;
    let callee_feature = feature_of(&mut callee).await;
    feature_of(&mut thief).await;

    // A calls the callee client; the thief answers first with the right labels.
    a.send(
        &Envelope::new("rpc", "call")
            .with_label("rpcID", "1")
            .with_label("feature", callee_feature.clone())
            .with_label("method", "ask")
            .with_payload(&b"question"[..]),
    )
    .await;
    let call = callee.next(Duration::from_secs(10)).await.unwrap();
    assert!(call.is("rpc", "call"));
    assert_eq!(call.labels.get_str("caller"), Some(a_feature.as_str()));
    thief.send(&ret(&a_feature, "1", b"forged")).await;
    forged(&b, 1).await;
    callee.send(&ret(&a_feature, "1", b"real")).await;
    let r = a.next(Duration::from_secs(10)).await.unwrap();
    assert!(r.is("rpc", "return"));
    assert_eq!(&r.payload[..], b"real");

    // A calls the driver, which takes a second; the thief's return comes first.
    a.send(
        &Envelope::new("rpc", "call")
            .with_label("rpcID", "2")
            .with_label("feature", "driver:conf")
            .with_label("method", "sleep")
            .with_payload(&b"{\"seconds\":1}"[..]),
    )
    .await;
    thief.send(&ret(&a_feature, "2", b"forged")).await;
    forged(&b, 2).await;
    let r = a.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(&r.payload[..], b"{\"seconds\":1}");
    assert!(a.next(Duration::from_millis(300)).await.is_none());

    let stats = b.driver_stats().await;
    assert_eq!(stats.rpc.forged_returns, 2);
    let line = log
        .wait_for(&["rpc return from a feature the call was not routed to"])
        .await;
    assert!(
        line.contains(&format!("expected={callee_feature}")),
        "{line}"
    );
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_client_cannot_answer_an_http_call_to_a_driver() {
    let (b, _dir, _g) = common::gateway::start("").await;
    wait_alive(&b, "conf").await;
    let h = b.gateway().http.unwrap();
    let call = tokio::task::spawn_local(async move {
        http::request(
            h,
            "POST",
            "/v1/drivers/conf/rpc/sleep",
            &[],
            b"{\"seconds\":1}",
        )
        .await
    });
    for _ in 0..500 {
        if b.driver_stats().await.rpc_in_flight > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The broker's own calls have caller `-` and small sequential ids: try them all.
    let mut thief = Tcp::connect(b.local_addr()).await;
    for id in 1..=50 {
        thief
            .send(&ret("-", &id.to_string(), b"{\"forged\":true}"))
            .await;
    }
    forged(&b, 1).await;
    let reply = call.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "{\"seconds\":1}");
    let metrics = http::get(h, "/metrics").await.text();
    assert!(
        metrics.contains("switchyard_rpc_forged_returns_total 1\n"),
        "{metrics}"
    );
    b.run_until(async {}).await;
}

/// Returns for calls nobody made cost a log line a second, not one each.
#[actix::test]
async fn stray_returns_are_logged_once_a_second_with_a_count() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &driver("conf", "conformance", "")))
        .await
        .unwrap();
    wait_alive(&b, "conf").await;
    let mut c = Tcp::connect(b.local_addr()).await;
    for i in 0..300 {
        let ret = Envelope::new("rpc", "return")
            .with_label("caller", format!("client:{}", 1000 + i))
            .with_label("rpcID", "1");
        c.send(&ret).await;
    }
    // The connection still answers, and the strays left one line (or two at a second's
    // edge), not 300.
    c.send(&Envelope::new("command", "ping")).await;
    assert!(c.next(Duration::from_secs(5)).await.is_some());
    log.wait_for(&["rpc return for no pending call", "suppressed=0"])
        .await;
    let lines = log.text().matches("rpc return for no pending call").count();
    assert!(lines <= 3, "{lines} lines for 300 stray returns");
    b.run_until(async {}).await;
}
