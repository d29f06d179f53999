//! A running driver's frame counters as clients read them: `call broker drivers` over
//! the broker port and `GET /v1/drivers` move with every frame, not only when the
//! driver changes state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::drivers::*;
use common::gateway::start;
use common::http::get;
use serde_json::Value;

/// `(frames_in, frames_out)` of driver `conf` in a list of driver statuses.
fn counts(list: &Value) -> (u64, u64) {
    let d = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "conf")
        .unwrap_or_else(|| panic!("no driver conf in {list}"));
    (
        d["frames_in"].as_u64().unwrap(),
        d["frames_out"].as_u64().unwrap(),
    )
}

async fn over_rpc(c: &mut Tcp, id: &str) -> (u64, u64) {
    let r = c
        .call(
            &[("rpcID", id), ("feature", "broker"), ("method", "drivers")],
            b"",
        )
        .await;
    counts(&serde_json::from_slice(&r.payload).unwrap())
}

async fn over_http(b: &switchyard::Broker) -> (u64, u64) {
    let r = get(b.gateway().http.unwrap(), "/v1/drivers").await;
    counts(&r.json()["drivers"])
}

#[actix::test]
async fn frame_counters_move_while_the_driver_runs() {
    let (b, _dir, _g) = start("").await;
    wait_alive(&b, "conf").await;
    let mut c = Tcp::connect(b.local_addr()).await;
    let before_rpc = over_rpc(&mut c, "1").await;
    let before_http = over_http(&b).await;
    for i in 0..5 {
        let id = format!("echo-{i}");
        let r = c
            .call(
                &[
                    ("rpcID", id.as_str()),
                    ("feature", "driver:conf"),
                    ("method", "echo"),
                ],
                b"{}",
            )
            .await;
        assert_eq!(&r.payload[..], b"{}");
    }
    // Five calls written to the driver and five returns read from it.
    let after_rpc = over_rpc(&mut c, "2").await;
    assert!(
        after_rpc.0 >= before_rpc.0 + 5 && after_rpc.1 >= before_rpc.1 + 5,
        "broker drivers: before {before_rpc:?}, after {after_rpc:?}"
    );
    let after_http = over_http(&b).await;
    assert!(
        after_http.0 >= before_http.0 + 5 && after_http.1 >= before_http.1 + 5,
        "/v1/drivers: before {before_http:?}, after {after_http:?}"
    );
}
