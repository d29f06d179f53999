//! RPC through the broker (R1-R10 routed), the `broker` feature, TCP clients as
//! callers, the event bus with rules, subscribers and the eventbus topic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::drivers::*;
use common::Log;
use serde_json::{json, Value};
use switchyard_codecs::Envelope;

#[actix::test]
async fn tcp_client_calls_drivers_and_the_broker() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &driver("conf", "conformance", "")))
        .await
        .unwrap();
    wait_alive(&b, "conf").await;
    let mut c = Tcp::connect(b.local_addr()).await;
    // R1 routed: caller is rewritten to the client's feature, the payload comes back as is.
    let r = c
        .call(
            &[
                ("rpcID", "7"),
                ("feature", "driver:conf"),
                ("method", "echo"),
                ("caller", "-"),
            ],
            b"{\"a\": 1}",
        )
        .await;
    assert_eq!(&r.payload[..], b"{\"a\": 1}");
    let caller = r.labels.get_str("caller").unwrap().to_string();
    assert!(caller.starts_with("client:"), "{caller}");
    // R2, R4: the driver's errors come through.
    let r = c
        .call(
            &[
                ("rpcID", "8"),
                ("feature", "driver:conf"),
                ("method", "nosuch"),
            ],
            b"",
        )
        .await;
    assert_eq!(
        r.labels.get_str("error"),
        Some("runtime error: invalid memory address or nil pointer dereference")
    );
    let r = c
        .call(
            &[
                ("rpcID", "9"),
                ("feature", "driver:conf"),
                ("method", "fail"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.labels.get_str("error"), Some("conformance failure"));
    // R7: a feature that is not loaded is answered at once.
    let t = Instant::now();
    let r = c
        .call(
            &[
                ("rpcID", "10"),
                ("feature", "driver:nosuch"),
                ("method", "echo"),
            ],
            b"",
        )
        .await;
    assert_eq!(
        r.labels.get_str("error"),
        Some("feature driver:nosuch is not loaded")
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    // R3: `skip` gets no return; the next call's return is the next frame.
    c.send(
        &Envelope::new("rpc", "call")
            .with_label("rpcID", "skip")
            .with_label("feature", "driver:conf")
            .with_label("method", "echo")
            .with_payload(&b"x"[..]),
    )
    .await;
    // R8: raw bytes both ways.
    let r = c
        .call(
            &[
                ("rpcID", "11"),
                ("feature", "driver:conf"),
                ("method", "decrypt"),
            ],
            b"world",
        )
        .await;
    assert_eq!(&r.payload[..], b"decrypted:world");
    // The broker's own feature.
    let r = c
        .call(
            &[("rpcID", "12"), ("feature", "broker"), ("method", "ping")],
            b"",
        )
        .await;
    assert_eq!(&r.payload[..], b"pong");
    let r = c
        .call(
            &[("rpcID", "13"), ("feature", "broker"), ("method", "tree")],
            b"",
        )
        .await;
    let tree: Value = serde_json::from_slice(&r.payload).unwrap();
    let text = tree.to_string();
    assert!(
        text.contains("\"drivers\"") && text.contains("\"conf\""),
        "{text}"
    );
    let r = c
        .call(
            &[
                ("rpcID", "14"),
                ("feature", "broker"),
                ("method", "drivers"),
            ],
            b"",
        )
        .await;
    let drivers: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(drivers[0]["name"], "conf");
    assert_eq!(drivers[0]["state"], "alive");
    let r = c
        .call(
            &[("rpcID", "15"), ("feature", "broker"), ("method", "nope")],
            b"",
        )
        .await;
    assert!(r
        .labels
        .get_str("error")
        .unwrap()
        .contains("no method nope"));
    // publish and fetch: topics over RPC.
    let r = c
        .call(
            &[
                ("rpcID", "16"),
                ("feature", "broker"),
                ("method", "publish"),
            ],
            br#"{"topic":"notes","value":"v1","key":"k"}"#,
        )
        .await;
    assert_eq!(&r.payload[..], br#"{"offset":0,"partition":0}"#);
    let r = c
        .call(
            &[("rpcID", "17"), ("feature", "broker"), ("method", "fetch")],
            br#"{"topic":"notes"}"#,
        )
        .await;
    let v: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(v["records"][0]["value"], "v1");
    assert_eq!(v["records"][0]["key"], "k");
    assert_eq!(v["next"], 1);
    let r = c
        .call(
            &[("rpcID", "18"), ("feature", "broker"), ("method", "fetch")],
            br#"{"topic":"nope"}"#,
        )
        .await;
    assert_eq!(r.labels.get_str("error"), Some("unknown topic `nope`"));
    let stats = b.driver_stats().await;
    assert_eq!(stats.rpc.unroutable, 1);
    b.run_until(async {}).await;
}

/// Calls read together are answered in one turn of the driver host: every return must
/// reach the caller (the connection's mailbox once held 16, and the rest were dropped).
#[actix::test]
async fn many_calls_in_one_write_are_all_answered() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut c = Tcp::connect(b.local_addr()).await;
    let calls: Vec<Envelope> = (0..200)
        .map(|i| {
            Envelope::new("rpc", "call")
                .with_label("rpcID", i.to_string())
                .with_label("feature", "broker")
                .with_label("method", "ping")
        })
        .collect();
    c.send_all(&calls).await;
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < calls.len() {
        let r = c
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("only {} of 200 returns", answered.len()));
        assert!(r.is("rpc", "return"), "{r:?}");
        assert_eq!(&r.payload[..], b"pong");
        answered.insert(r.labels.get_str("rpcID").unwrap().to_string());
    }
}

#[actix::test]
async fn drivers_call_each_other_and_decrypt_options_at_start() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let body = driver(
        "conf",
        "conformance",
        "[driver.options]\nsecret = \"ENC[crypto,aGVsbG8=]\"\nkey = \"LOOKUP[crypto,db]\"\npat = \":regex:^x\"\n",
    ) + &driver("crypto", "conformance", "");
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    wait_alive(&b, "conf").await;
    wait_alive(&b, "crypto").await;
    // R9: conf decrypted through crypto before it said alive; R10: the regex leaf is {}.
    let opts = b
        .call("driver:conf", "options", Bytes::new(), None)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&opts).unwrap();
    assert_eq!(v["data"]["secret"], "decrypted:hello");
    assert_eq!(v["data"]["key"], "looked-up:db");
    assert_eq!(v["data"]["pat"], json!({}));
    // R6: conf calls crypto; crypto sees caller driver:conf; conf's answer carries crypto's.
    let params = json!({"feature": "driver:crypto", "method": "echo", "params": {"q": 1}});
    let out = b
        .call("driver:conf", "call", Bytes::from(params.to_string()), None)
        .await
        .unwrap();
    assert_eq!(&out[..], b"{\"q\":1}");
    // And back: conf asks crypto to call conf's echo, while conf's own call waits.
    let inner = json!({"feature": "driver:conf", "method": "echo", "params": {"back": true}});
    let params = json!({"feature": "driver:crypto", "method": "call", "params": inner});
    let out = b
        .call("driver:conf", "call", Bytes::from(params.to_string()), None)
        .await
        .unwrap();
    assert_eq!(&out[..], b"{\"back\":true}");
    // A driver calling a feature that is not loaded hears so at once, not after 10 s.
    let params = json!({"feature": "driver:nosuch", "method": "echo", "params": {}});
    let t = Instant::now();
    let err = b
        .call("driver:conf", "call", Bytes::from(params.to_string()), None)
        .await
        .unwrap_err();
    assert!(err.contains("feature driver:nosuch is not loaded"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2));
    b.run_until(async {}).await;
}

#[actix::test]
async fn caller_timeout_answers_and_a_late_return_is_dropped() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &driver("conf", "conformance", ""))
        .replace("[drivers]\n", "[drivers]\nrpc_timeout_ms = 400\n");
    let b = switchyard::start(&switchyard::Config::parse(&text, "test").unwrap())
        .await
        .unwrap();
    wait_alive(&b, "conf").await;
    let mut c = Tcp::connect(b.local_addr()).await;
    let t = Instant::now();
    let r = c
        .call(
            &[
                ("rpcID", "1"),
                ("feature", "driver:conf"),
                ("method", "sleep"),
            ],
            b"{\"seconds\":1}",
        )
        .await;
    assert_eq!(r.labels.get_str("error"), Some("timeout"));
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    // The driver's own answer arrives after about 1 s: dropped, logged, counted.
    log.wait_for(&["rpc return for no pending call", "rpc_id=1"])
        .await;
    assert!(c.next(Duration::from_millis(300)).await.is_none());
    // A `timeout` label sets the deadline (R5): 200 ms here. The driver honours it too,
    // so either side may answer first.
    let t = Instant::now();
    let r = c
        .call(
            &[
                ("rpcID", "2"),
                ("feature", "driver:conf"),
                ("method", "sleep"),
                ("timeout", "200ms"),
            ],
            b"{\"seconds\":1}",
        )
        .await;
    assert_eq!(r.labels.get_str("error"), Some("timeout"));
    assert!(t.elapsed() < Duration::from_millis(600));
    let stats = b.driver_stats().await;
    assert!(stats.rpc.timeouts >= 1);
    assert!(stats.rpc.late_returns >= 1);
    b.run_until(async {}).await;
}

#[actix::test]
async fn events_fire_rules_reach_subscribers_and_the_eventbus_topic() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let body = driver("src", "conformance", "")
        + &driver("dst", "conformance", "")
        + "[[rule]]\nname = \"hook\"\n\
           when = { driver = \"src\", match = { url = \"/hook\", form = { token = \":regex:^s3cr\" } } }\n\
           do = { driver = \"dst\", method = \"echo\", params = { env = \"prod\", url = \"${data.url}\" }, retry = 1, backoff_ms = 10, timeout_s = 5 }\n";
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    wait_alive(&b, "src").await;
    wait_alive(&b, "dst").await;
    // The driver named in `when` got the rule as collapsedEvents, to filter at the source.
    let opts = b
        .call("driver:src", "options", Bytes::new(), None)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&opts).unwrap();
    assert_eq!(
        v["dynamicData"]["collapsedEvents"]["src."][0]["match"]["url"],
        "/hook"
    );
    let mut sub = Tcp::connect(b.local_addr()).await;
    sub.send(&Envelope::new("eventbus", "subscribe")).await;
    assert!(sub
        .next(Duration::from_secs(5))
        .await
        .unwrap()
        .is("eventbus", "subscribed"));
    let hit = json!({"events": ["src."], "data": {"url": "/hook", "form": {"token": "s3cret"}}});
    let miss = json!({"events": ["src."], "data": {"url": "/hook", "form": {"token": "nope"}}});
    for e in [&hit, &miss] {
        b.call("driver:src", "emit", Bytes::from(e.to_string()), None)
            .await
            .unwrap();
    }
    for want in [&hit, &miss] {
        let got = sub.next(Duration::from_secs(5)).await.unwrap();
        assert!(got.is("eventbus", "message"));
        assert_eq!(got.labels.get_str("driver"), Some("src"));
        assert_eq!(got.labels.get_str("eventID").map(str::len), Some(36));
        let v: Value = serde_json::from_slice(&got.payload).unwrap();
        assert_eq!(&v, want);
    }
    // One match: dst ran `echo` with the filled-in params and returned success.
    for _ in 0..250 {
        if b.driver_stats().await.bus.returns.get("success") == Some(&1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = b.driver_stats().await;
    assert_eq!(stats.bus.events, 2);
    assert_eq!(stats.bus.rule_matches, 1);
    assert_eq!(stats.bus.commands_sent, 1);
    assert_eq!(stats.bus.returns.get("success"), Some(&1));
    assert_eq!(stats.bus.delivered_to_clients, 2);
    // Both events were appended to the `eventbus` topic.
    let addr = b.local_addr();
    let listing = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        switchyard::client::topics(addr, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    })
    .await
    .unwrap();
    let line = listing
        .lines()
        .find(|l| l.starts_with("eventbus ") && l.split_whitespace().nth(1) == Some("0"))
        .expect(&listing);
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[3], "2", "{line}");
    b.run_until(async {}).await;
}
