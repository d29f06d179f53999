//! `bench rpc --serve`: the bench answers its own calls as registered instances of a
//! service, or as a remote driver, against the real broker; every call of both runs
//! (one at a time, then many in flight) is answered without an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

async fn bench(b: &switchyard::Broker, feature: &str, serve: usize) -> String {
    let to = switchyard::client::Target::from(b.local_addr());
    let o = switchyard::bench::rpc::Options {
        feature: feature.to_string(),
        method: "echo".into(),
        size: 100,
        count: 500,
        inflight: 64,
        warmup: 50,
        serve,
    };
    // The broker runs on this thread: the bench's blocking clients run on another.
    let run = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let r = switchyard::bench::rpc::run(&to, &o, &mut out);
        (r, String::from_utf8(out).unwrap())
    });
    let (r, text) = run.await.unwrap();
    r.unwrap_or_else(|e| panic!("bench rpc {feature} failed: {e}\n{text}"));
    text
}

fn check(text: &str, answered_by: &str) {
    assert!(text.contains(answered_by), "{text}");
    for run in ["one call at a time: 500 calls", "64 in flight: 500 calls"] {
        let line = text
            .lines()
            .find(|l| l.contains(run))
            .unwrap_or_else(|| panic!("no `{run}` line:\n{text}"));
        assert!(!line.contains("error"), "{line}");
    }
}

#[actix_rt::test]
async fn bench_rpc_serves_its_own_service_instances() {
    let b = common::start("").await;
    let text = bench(&b, "svc:benchsvc", 2).await;
    check(&text, "2 registered instance(s) of svc:benchsvc");
    // Both instances took calls: the broker spreads them.
    let out = b
        .call("broker", "services", bytes::Bytes::new(), None)
        .await
        .unwrap();
    let services: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    let s = services
        .iter()
        .find(|s| s["name"] == "svc:benchsvc")
        .unwrap_or_else(|| panic!("svc:benchsvc not listed: {services:?}"));
    assert_eq!(s["calls"], 2 * (500 + 50), "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    let instances = s["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{s}");
    assert!(
        instances.iter().all(|i| i["calls"].as_u64().unwrap() > 0),
        "{s}"
    );
}

#[actix_rt::test]
async fn bench_rpc_serves_as_a_remote_driver() {
    let b = common::start("").await;
    let text = bench(&b, "driver:benchdrv", 1).await;
    check(&text, "driver:benchdrv as a remote driver");
}

#[actix_rt::test]
async fn bench_rpc_serve_refuses_other_features() {
    let b = common::start("").await;
    let to = switchyard::client::Target::from(b.local_addr());
    let e = switchyard::bench::responder::start(&to, "broker", 1).unwrap_err();
    assert!(e.to_string().contains("svc:<name> or driver:<name>"), "{e}");
}
