//! `topics.max_fetch_bytes` on every front end (issue 12, "one fetch stalls
//! everyone"): a fetch asking for 1e9 bytes gets at most the cap, and is told so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::gateway::{grpc, start};

use common::drivers::*;
use common::http::{get, post_json};
use serde_json::{json, Value};
use switchyard_actors::gateway::pb::FetchRequest;

const CAP: usize = 65_536;
const RECORD: usize = 4_000;
const RECORDS: usize = 64;

/// The sum of the values' lengths of a JSON fetch answer.
fn value_bytes(v: &Value) -> usize {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap().len())
        .sum()
}

/// At most the cap (plus the one record a read always returns) and not nothing.
fn assert_capped(got: usize) {
    assert!(got > 0, "nothing fetched");
    assert!(got <= CAP + RECORD, "{got} bytes over the cap of {CAP}");
}

#[actix::test]
async fn a_fetch_asking_for_1e9_bytes_gets_at_most_max_fetch_bytes_on_every_front_end() {
    let (b, _dir, _g) = start("[topics]\nmax_fetch_bytes = 65536").await;
    wait_alive(&b, "conf").await;
    let h = b.gateway().http.unwrap();
    let values: Vec<String> = (0..RECORDS)
        .map(|i| format!("{i:04}").repeat(RECORD / 4))
        .collect();
    let r = post_json(h, "/v1/topics/big/messages", &json!({ "values": values })).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The `broker` feature over the broker port.
    let mut c = Tcp::connect(b.local_addr()).await;
    let r = c
        .call(
            &[("rpcID", "1"), ("feature", "broker"), ("method", "fetch")],
            br#"{"topic":"big","max_bytes":1000000000}"#,
        )
        .await;
    let v: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_capped(value_bytes(&v));
    assert_eq!(v["capped_to"], json!(CAP));
    let next = v["next"].as_u64().unwrap();
    assert!(
        next < RECORDS as u64,
        "next {next}: the rest is left for later"
    );
    // Within the cap, nothing is said.
    let r = c
        .call(
            &[("rpcID", "2"), ("feature", "broker"), ("method", "fetch")],
            br#"{"topic":"big","max_bytes":10000}"#,
        )
        .await;
    let v: Value = serde_json::from_slice(&r.payload).unwrap();
    assert!(v.get("capped_to").is_none(), "{v}");
    assert!(value_bytes(&v) <= 10_000 + RECORD);

    // HTTP.
    let v = get(
        h,
        "/v1/topics/big/messages?from=0&max=10000&max_bytes=1000000000",
    )
    .await
    .json();
    assert_capped(value_bytes(&v));
    assert_eq!(v["capped_to"], json!(CAP));
    let v = get(h, "/v1/topics/big/messages?from=0&max=10000")
        .await
        .json();
    assert_capped(value_bytes(&v));
    assert!(
        v.get("capped_to").is_none(),
        "no max_bytes: the cap, unsaid"
    );

    // gRPC.
    let f = grpc(&b)
        .await
        .fetch(FetchRequest {
            topic: "big".into(),
            partition: 0,
            from: 0,
            max: 10_000,
            max_bytes: 1_000_000_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_capped(f.records.iter().map(|r| r.value.len()).sum());
    assert_eq!(f.capped_to, CAP as u64);
    b.run_until(async {}).await;
}
