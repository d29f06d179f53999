//! `GET /v1/topics/{t}/messages` without `partition` reads every partition (each record
//! with its partition, `max` shared, a cursor to resume from); with `partition`, one;
//! `max` bounds what is read, on HTTP and on the `broker` feature's `fetch`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::gateway::start;

use common::http::{get, post_json};
use serde_json::{json, Value};

fn offsets_by_partition(v: &Value) -> Vec<(u64, u64)> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["partition"].as_u64().unwrap(),
                r["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[actix::test]
async fn a_fetch_without_partition_reads_every_partition() {
    let (b, _dir, _g) = start("").await;
    let h = b.gateway().http.unwrap();
    let r = post_json(
        h,
        "/v1/topics",
        &json!({"name": "multi", "partitions": 3, "routing": "explicit"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    for p in 0..3u32 {
        let values: Vec<String> = (0..4).map(|i| format!("p{p}-{i}")).collect();
        let r = post_json(
            h,
            "/v1/topics/multi/messages",
            &json!({"values": values, "partition": p}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Everything: 12 records, each partition's in order, each naming its partition.
    let v = get(h, "/v1/topics/multi/messages?from=0").await.json();
    let mut got = offsets_by_partition(&v);
    assert_eq!(got.len(), 12, "{v}");
    for r in v["records"].as_array().unwrap() {
        let (p, o) = (
            r["partition"].as_u64().unwrap(),
            r["offset"].as_u64().unwrap(),
        );
        assert_eq!(r["value"], format!("p{p}-{o}"));
    }
    got.sort();
    let want: Vec<(u64, u64)> = (0..3).flat_map(|p| (0..4).map(move |o| (p, o))).collect();
    assert_eq!(got, want);
    assert_eq!(v["next"], json!({"0": 4, "1": 4, "2": 4}));
    assert_eq!(v["cursor"], "0:4,1:4,2:4");

    // `max` is shared: 6 records, two from each partition; the cursor resumes the rest.
    let v = get(h, "/v1/topics/multi/messages?from=0&max=6")
        .await
        .json();
    let got = offsets_by_partition(&v);
    assert_eq!(got, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)], "{v}");
    let cursor = v["cursor"].as_str().unwrap().to_string();
    assert_eq!(cursor, "0:2,1:2,2:2");
    let v = get(
        h,
        &format!("/v1/topics/multi/messages?from={cursor}&max=100"),
    )
    .await
    .json();
    assert_eq!(
        offsets_by_partition(&v),
        [(0, 2), (0, 3), (1, 2), (1, 3), (2, 2), (2, 3)]
    );
    // A cursor that leaves a partition out reads it from 0.
    let v = get(h, "/v1/topics/multi/messages?from=0:4,1:4")
        .await
        .json();
    assert_eq!(offsets_by_partition(&v), [(2, 0), (2, 1), (2, 2), (2, 3)]);

    // One partition named: as before, `next` a number.
    let v = get(h, "/v1/topics/multi/messages?partition=2&from=1&max=2")
        .await
        .json();
    assert_eq!(offsets_by_partition(&v), [(2, 1), (2, 2)]);
    assert_eq!(v["next"], 3);

    let r = get(h, "/v1/topics/multi/messages?from=zz").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("from"));
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_one_partition_topic_answers_with_a_number() {
    let (b, _dir, _g) = start("").await;
    let h = b.gateway().http.unwrap();
    let values: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    post_json(h, "/v1/topics/one/messages", &json!({ "values": values })).await;
    let v = get(h, "/v1/topics/one/messages?from=10&max=10")
        .await
        .json();
    assert_eq!(
        offsets_by_partition(&v),
        (10..20).map(|o| (0, o)).collect::<Vec<_>>()
    );
    assert_eq!(v["next"], 20);
    assert!(v.get("cursor").is_none());
    b.run_until(async {}).await;
}

#[actix::test]
async fn the_broker_feature_fetch_takes_max() {
    use common::drivers::Tcp;
    let (b, _dir, _g) = start("").await;
    let h = b.gateway().http.unwrap();
    let values: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    post_json(h, "/v1/topics/few/messages", &json!({ "values": values })).await;
    let mut c = Tcp::connect(b.local_addr()).await;
    let r = c
        .call(
            &[("rpcID", "1"), ("feature", "broker"), ("method", "fetch")],
            br#"{"topic":"few","from":5,"max":3}"#,
        )
        .await;
    let v: Value = serde_json::from_slice(&r.payload).unwrap();
    let got: Vec<u64> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(got, [5, 6, 7], "{v}");
    assert_eq!(v["next"], 8);
    b.run_until(async {}).await;
}
