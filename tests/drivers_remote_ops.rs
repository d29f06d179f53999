//! Remote drivers in operation: many calls at once, reloads, the gateway's lists, and the
//! test driver binary as a remote driver over TCP (`switchyard-driver --connect`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::drivers::*;
use common::remote::*;
use common::Log;
use serde_json::{json, Value};
use switchyard_actors::drivers::DriverState;
use switchyard_codecs::Envelope;

/// The test driver as a remote driver: `switchyard-driver --connect ADDR --name NAME`.
fn remote_driver(b: &switchyard::Broker, name: &str) -> tokio::process::Child {
    tokio::process::Command::new(DRIVER)
        .args(["--connect", &b.local_addr().to_string(), "--name", name])
        .args(["operator", "conformance"])
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[actix::test]
async fn the_test_driver_runs_remote_over_tcp() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &body()))
        .await
        .unwrap();
    wait_alive(&b, "conf").await;
    let mut p = remote_driver(&b, "edge");
    let s = wait_alive(&b, "edge").await;
    assert!(s.peer.is_some() && s.pid.is_none(), "{s:?}");
    let mut c = Tcp::connect(b.local_addr()).await;
    let r = c
        .call(
            &[
                ("rpcID", "1"),
                ("feature", "driver:edge"),
                ("method", "options"),
            ],
            b"",
        )
        .await;
    let options: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(options["data"], json!({"greeting": "hi"}), "{options}");
    // It calls through the broker: `call` makes it call `broker` `ping`.
    let r = c
        .call(
            &[
                ("rpcID", "2"),
                ("feature", "driver:edge"),
                ("method", "call"),
            ],
            br#"{"feature":"broker","method":"ping"}"#,
        )
        .await;
    assert_eq!(
        (&r.payload[..], r.labels.get_str("error")),
        (&b"pong"[..], None)
    );
    // Killed with a call in flight (handed to its connection): the call fails at once.
    let before = wait_alive(&b, "edge").await.frames_out;
    c.send(&call("3", "driver:edge", "sleep", br#"{"seconds":30}"#).with_label("timeout", "60s"))
        .await;
    wait_driver(&b, "edge", 5, |s| s.frames_out > before).await;
    let t = Instant::now();
    p.kill().await.unwrap();
    let r = expect(&mut c, "return 3", |e| {
        e.labels.get_str("rpcID") == Some("3")
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(
        r.labels.get_str("error"),
        Some("driver edge disconnected before it answered")
    );
    // Started again, it is alive again.
    let _p = remote_driver(&b, "edge");
    wait_driver(&b, "edge", 10, |s| {
        s.state == DriverState::Alive && s.alive_count == 2
    })
    .await;
    // A second one with the same name is refused and exits.
    let mut dup = remote_driver(&b, "edge");
    let status = tokio::time::timeout(Duration::from_secs(10), dup.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(3));
    b.run_until(async {}).await;
}

#[actix::test]
async fn many_calls_at_once_all_reach_a_remote_driver() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &body()))
        .await
        .unwrap();
    let mut d = Tcp::connect(b.local_addr()).await;
    become_driver(&b, &mut d, "edge").await;
    let mut c = Tcp::connect(b.local_addr()).await;
    // One write: the host routes them in one turn, faster than the connection writes.
    let mut burst = bytes::BytesMut::new();
    for i in 0..256 {
        call(&i.to_string(), "driver:edge", "hi", b"")
            .encode(&mut burst)
            .unwrap();
    }
    use tokio::io::AsyncWriteExt;
    c.s.write_all(&burst).await.unwrap();
    for _ in 0..256 {
        let got = expect(&mut d, "a call", |e| e.is("rpc", "call")).await;
        let ret = Envelope::new("rpc", "return")
            .with_label("rpcID", got.labels.get_str("rpcID").unwrap().to_string())
            .with_label("caller", got.labels.get_str("caller").unwrap().to_string());
        d.send(&ret).await;
    }
    for _ in 0..256 {
        let r = expect(&mut c, "a return", |e| e.is("rpc", "return")).await;
        assert_eq!(r.labels.get_str("error"), None, "{r:?}");
    }
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_reload_hot_reloads_and_removes_declared_remote_drivers_only() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let mut b = switchyard::start(&config(dir.path(), &body()))
        .await
        .unwrap();
    let mut d = Tcp::connect(b.local_addr()).await;
    become_driver(&b, &mut d, "edge").await;
    let mut x = Tcp::connect(b.local_addr()).await;
    become_driver(&b, &mut x, "adhoc").await;

    // Changed options: sent again to the connected driver, which answers alive again.
    let changed = body().replace("greeting = \"hi\"", "greeting = \"bye\"");
    let summary = b.reload_with(config(dir.path(), &changed)).await.unwrap();
    assert_eq!(summary.hot, vec!["edge".to_string()]);
    assert!(summary.stopped.is_empty(), "{summary:?}");
    let options = expect(&mut d, "command options", |e| e.is("command", "options")).await;
    let options: Value = serde_json::from_slice(&options.payload).unwrap();
    assert_eq!(options["data"], json!({"greeting": "bye"}));
    expect(&mut d, "command start", |e| e.is("command", "start")).await;
    wait_driver(&b, "edge", 5, |s| s.state == DriverState::Reloading).await;
    d.send(&Envelope::new("state", "alive")).await;
    wait_driver(&b, "edge", 5, |s| {
        s.state == DriverState::Alive && s.alive_count == 2
    })
    .await;

    // Removed from the config: stopped; the connection stays, as a plain client.
    let without = driver("conf", "conformance", "");
    let summary = b.reload_with(config(dir.path(), &without)).await.unwrap();
    assert_eq!(summary.stopped, vec!["edge".to_string()]);
    expect(&mut d, "command stop", |e| e.is("command", "stop")).await;
    d.send(&Envelope::new("state", "stopped")).await;
    let e = expect(&mut d, "driver error", |e| e.is("driver", "error")).await;
    assert_eq!(
        e.labels.get_str("error"),
        Some("driver stopped by the broker")
    );
    d.send(&Envelope::new("command", "ping")).await;
    expect(&mut d, "state alive", |e| e.is("state", "alive")).await;
    let all = b.drivers().await;
    assert!(!all.iter().any(|s| s.name == "edge"), "{all:#?}");
    // The undeclared one was never the config's to stop.
    assert_eq!(
        wait_alive(&b, "adhoc").await.peer,
        Some(x.s.local_addr().unwrap().to_string())
    );
    b.run_until(async {}).await;
}

#[actix::test]
async fn the_gateway_lists_a_remote_driver_with_its_peer() {
    let (b, _dir, _g) =
        common::gateway::start("[[driver]]\nname = \"edge\"\nremote = true\n").await;
    let mut d = Tcp::connect(b.local_addr()).await;
    become_driver(&b, &mut d, "edge").await;
    let peer = d.s.local_addr().unwrap().to_string();
    let r = common::http::get(b.gateway().http.unwrap(), "/v1/drivers").await;
    let list = r.json()["drivers"].as_array().unwrap().clone();
    let edge = list.iter().find(|d| d["name"] == "edge").unwrap();
    assert_eq!(
        (edge["remote"].clone(), edge["peer"].clone()),
        (json!(true), json!(peer))
    );
    let mut g = common::gateway::grpc(&b).await;
    let reply = g
        .list_drivers(switchyard_actors::gateway::pb::ListDriversRequest {})
        .await
        .unwrap()
        .into_inner();
    let edge = reply.drivers.iter().find(|d| d.name == "edge").unwrap();
    assert!(edge.remote);
    assert_eq!(edge.peer.as_deref(), Some(peer.as_str()));
    assert_eq!(edge.state, "alive");
    b.run_until(async {}).await;
}
