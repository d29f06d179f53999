//! The gateway against the real broker on port 0: every operation through HTTP/JSON
//! (gRPC's are in `gateway_grpc.rs`), errors and their codes, request ids, SSE and gRPC
//! streams (in order, ending at shutdown), `/metrics` as Prometheus text whose counters
//! move, health, and the page in a real headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::gateway::{grpc, start};

use common::drivers::*;
use common::http::{get, post_json, request, Sse};
use serde_json::{json, Value};
use switchyard_actors::gateway::pb::*;

#[actix::test]
async fn every_operation_over_http() {
    let (b, _dir, _g) = start("").await;
    wait_alive(&b, "conf").await;
    let h = b.gateway().http.unwrap();
    let r = get(h, "/healthz").await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("serving"))
    );
    let r = post_json(
        h,
        "/v1/topics",
        &json!({"name": "orders", "partitions": 2, "routing": "explicit"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.header("x-request-id").is_some());
    let r = post_json(
        h,
        "/v1/topics/orders/messages",
        &json!({"values": ["a", {"n": 1}], "partition": 1}),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"partition": 1, "first_offset": 0, "count": 2})
    );
    let r = request(
        h,
        "POST",
        "/v1/topics/orders/messages?partition=1&key=k",
        &[("content-type", "text/plain")],
        b"raw bytes",
    )
    .await;
    assert_eq!(r.json()["first_offset"], 2);
    let r = get(h, "/v1/topics/orders/messages?partition=1&from=0&max=10").await;
    let v = r.json();
    let values: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["a", "{\"n\":1}", "raw bytes"]);
    assert_eq!(v["records"][2]["key"], "k");
    assert_eq!(v["next"], 3);
    let r = get(h, "/v1/topics").await;
    let t = &r.json()["topics"][0];
    assert_eq!(
        (t["name"].clone(), t["partitions"][1]["next_offset"].clone()),
        (json!("orders"), json!(3))
    );
    let r = request(
        h,
        "POST",
        "/v1/drivers/conf/rpc/echo",
        &[("x-request-id", "mine-1")],
        br#"{"q":1}"#,
    )
    .await;
    assert_eq!((r.status, r.text()), (200, "{\"q\":1}".to_string()));
    assert_eq!(r.header("x-request-id"), Some("mine-1"));
    let r = get(h, "/v1/drivers").await;
    assert_eq!(r.json()["drivers"][0]["state"], "alive");
    let r = get(h, "/v1/tree").await;
    assert!(
        r.text().contains("\"path\":\"root/gateway:gateway\""),
        "{}",
        r.text()
    );
    // Errors: a status and a JSON body.
    for (method, path, body, status) in [
        ("GET", "/v1/topics/nope/messages", &b""[..], 404),
        ("POST", "/v1/drivers/nosuch/rpc/echo", &b"{}"[..], 404),
        ("POST", "/v1/drivers/conf/rpc/fail", &b"{}"[..], 422),
        ("POST", "/v1/topics/orders/messages", &b"{not json"[..], 400),
        ("GET", "/v1/nothing", &b""[..], 404),
    ] {
        let r = request(
            h,
            method,
            path,
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{method} {path}");
    }
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_stream_opened_before_its_topic_exists_gets_the_records() {
    let (b, _dir, _g) = start("").await;
    let h = b.gateway().http.unwrap();
    let mut sse = Sse::open(h, "/v1/topics/fresh/stream?from=earliest", &[]).await;
    let mut c = grpc(&b).await;
    let mut g = c
        .subscribe(SubscribeRequest {
            topic: "fresh2".into(),
            partition: None,
            from: "earliest".into(),
            group: None,
            after: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    for t in ["fresh", "fresh2"] {
        let r = post_json(h, &format!("/v1/topics/{t}/messages"), &json!({"value": t})).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let d: Value = serde_json::from_str(&sse.next().await.unwrap()).unwrap();
    assert_eq!(d["value"], "fresh");
    let r = g.message().await.unwrap().unwrap();
    assert_eq!(r.value, b"fresh2");
    b.run_until(async {}).await;
}

#[actix::test]
async fn streams_deliver_in_order_and_end_at_shutdown() {
    let (b, _dir, _g) = start("").await;
    let h = b.gateway().http.unwrap();
    post_json(h, "/v1/topics", &json!({"name": "s"})).await;
    let mut sse = Sse::open(h, "/v1/topics/s/stream?from=earliest", &[]).await;
    let mut c = grpc(&b).await;
    let mut g = c
        .subscribe(SubscribeRequest {
            topic: "s".into(),
            partition: None,
            from: "earliest".into(),
            group: None,
            after: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    // More records than one stream window, in several batches.
    for batch in 0..6 {
        let values: Vec<Value> = (0..100)
            .map(|i| json!(format!("m{}", batch * 100 + i)))
            .collect();
        let r = post_json(h, "/v1/topics/s/messages", &json!({"values": values})).await;
        assert_eq!(r.status, 200);
    }
    for i in 0..600 {
        let d: Value = serde_json::from_str(&sse.next().await.expect("an SSE event")).unwrap();
        assert_eq!(
            (d["offset"].as_u64(), d["value"].as_str()),
            (Some(i), Some(format!("m{i}").as_str()))
        );
        let r = g.message().await.unwrap().expect("a gRPC record");
        assert_eq!((r.offset, r.value), (i, format!("m{i}").into_bytes()));
    }
    // A group member starts at the committed offset; what it was given is committed.
    let mut sse_g = Sse::open(h, "/v1/topics/s/stream?group=g1&from=earliest", &[]).await;
    for i in 0..600 {
        let d: Value = serde_json::from_str(&sse_g.next().await.unwrap()).unwrap();
        assert_eq!(d["offset"].as_u64(), Some(i));
    }
    // Shutdown ends both streams cleanly.
    let stop = b.run_until(async {});
    let (_, sse_end, grpc_end) = tokio::join!(stop, sse.next(), g.message());
    assert_eq!(sse_end, None);
    assert!(matches!(grpc_end, Ok(None) | Err(_)));
    let _ = sse_g;
}

#[actix::test]
async fn metrics_are_prometheus_text_and_move() {
    let (b, _dir, _g) = start("").await;
    wait_alive(&b, "conf").await;
    let h = b.gateway().http.unwrap();
    let before = parse_metrics(&get(h, "/metrics").await);
    post_json(
        h,
        "/v1/topics/m/messages",
        &json!({"values": ["a", "b", "c"]}),
    )
    .await;
    request(h, "POST", "/v1/drivers/conf/rpc/echo", &[], b"x").await;
    let after = parse_metrics(&get(h, "/metrics").await);
    let v = |m: &Vec<(String, f64)>, name: &str| m.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert_eq!(
        v(
            &after,
            "switchyard_partition_next_offset{topic=\"m\",partition=\"0\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        v(&after, "switchyard_rpc_calls_total").unwrap(),
        v(&before, "switchyard_rpc_calls_total").unwrap() + 1.0
    );
    assert_eq!(
        v(
            &after,
            "switchyard_driver_up{driver=\"conf\",state=\"alive\"}"
        ),
        Some(1.0)
    );
    assert!(v(&after, "switchyard_rpc_latency_seconds_count").unwrap() >= 1.0);
    let build = format!(
        "switchyard_build_info{{version=\"{}\",commit=\"{}\",profile=\"{}\"}}",
        switchyard_actors::build_info::VERSION,
        switchyard_actors::build_info::COMMIT,
        switchyard_actors::build_info::PROFILE
    );
    assert_eq!(v(&after, &build), Some(1.0), "no {build}");
    let page = get(h, "/").await;
    assert!(
        page.text().contains(switchyard_actors::build_info::line()),
        "the page does not name the build"
    );
    assert!(v(&after, "switchyard_rpc_latency_seconds_bucket{le=\"+Inf\"}").unwrap() >= 1.0);
    b.run_until(async {}).await;
}

/// Checks the Prometheus text format line by line; returns `(name{labels}, value)`.
fn parse_metrics(r: &common::http::Reply) -> Vec<(String, f64)> {
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let mut typed = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in r.text().lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            let name = p.next().unwrap().to_string();
            let kind = p.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name);
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "no # TYPE before {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            }
        }
        out.push((series.to_string(), value));
    }
    out
}

#[actix::test]
async fn the_page_shows_the_tree_in_headless_chromium() {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok()
        });
    let Some(browser) = browser else {
        assert!(
            std::env::var("CI").is_err(),
            "no Chromium under CI: .ci/run should have installed it"
        );
        eprintln!("skipped: no chromium on PATH (.ci/run installs it: apt-get install chromium)");
        return;
    };
    let (b, _dir, _g) = start("").await;
    wait_alive(&b, "conf").await;
    let h = b.gateway().http.unwrap();
    post_json(h, "/v1/topics/pagetopic/messages", &json!({"value": "v"})).await;
    let mut instance = Tcp::connect(b.local_addr()).await;
    instance
        .send(
            &switchyard_codecs::Envelope::new("rpc", "register")
                .with_label("feature", "svc:page")
                .with_label("id", "page-1"),
        )
        .await;
    assert!(instance
        .next(std::time::Duration::from_secs(5))
        .await
        .unwrap()
        .is("rpc", "registered"));
    let profile = _dir.path().join("chromium");
    let out = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("http://{h}/"))
        .output()
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-path=\"root/topics:registry\""),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("data-path=\"root/drivers:host/driver:conf\""),
        "{dom}"
    );
    assert!(dom.contains("<td>pagetopic</td>"), "{dom}");
    assert!(dom.contains("<td>svc:page</td>"), "{dom}");
    assert!(dom.contains("<td>page-1</td>"), "{dom}");
    assert!(dom.contains(" actors, updated "), "{dom}");
    b.run_until(async {}).await;
}
