//! What the log says is written for people: values as the config and the protocol
//! spell them (`routing=key_hash`, `addr=127.0.0.1:7480`), never Rust's debug forms
//! (`Some(…)`, `KeyHash`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::gateway::gateway_config;
use common::Log;

#[actix::test]
async fn start_up_lines_print_values_as_users_write_them() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let topics = "[[topic]]\nname = \"orders\"\npartitions = 2\nrouting = \"key_hash\"\n\
                  [[topic]]\nname = \"plain\"\n";
    let b = switchyard::start(&gateway_config(dir.path(), topics))
        .await
        .unwrap();
    let http = b.gateway().http.unwrap();
    let grpc = b.gateway().grpc.unwrap();
    let line = log.wait_for(&["topic ready", "topic=orders"]).await;
    assert!(line.contains("routing=key_hash"), "{line}");
    let line = log.wait_for(&["topic ready", "topic=plain"]).await;
    assert!(line.contains("routing=round_robin"), "{line}");
    let line = log.wait_for(&["http gateway listening"]).await;
    assert!(line.contains(&format!("addr={http} ")), "{line}");
    let line = log.wait_for(&["grpc gateway listening"]).await;
    assert!(line.contains(&format!("addr={grpc} ")), "{line}");
    let text = log.text();
    for debug_form in ["Some(", "None", "KeyHash", "RoundRobin"] {
        assert!(
            !text.contains(debug_form),
            "`{debug_form}` in the log:\n{text}"
        );
    }
    b.run_until(async {}).await;
}
