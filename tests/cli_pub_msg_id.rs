//! `switchyard pub --msg-id` and `--msg-id-prefix` through the built binary: the same
//! input sent again is acked as duplicates and stores nothing twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cli::{broker, ok, run};
use common::topic_env as env;
use common::topics::Client;

/// Records stored in `topic` over all its partitions, from `topic list`.
async fn stored(addr: std::net::SocketAddr, topic: &str) -> u64 {
    let mut c = Client::connect(addr).await;
    c.send(&env("list", &[], b"")).await;
    let list: serde_json::Value = serde_json::from_slice(&c.next().await.payload).unwrap();
    let t = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic)
        .unwrap();
    t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["next_offset"].as_u64().unwrap())
        .sum()
}

#[actix_rt::test]
async fn the_same_input_sent_again_is_acked_as_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "[topics]\ndefault_partitions = 3").await;
    let a = b.local_addr().to_string();

    let one = ["pub", "m", "hello", "--msg-id", "order-7", "--broker", &a];
    let (_, err) = ok(&one, b"").await;
    assert!(
        err.starts_with("published 1 record to m (partition "),
        "{err}"
    );
    assert!(!err.contains("stored before"), "{err}");
    let (_, again) = ok(&one, b"").await;
    assert_eq!(
        again.trim_end(),
        format!(
            "{}; 1 of them stored before (duplicate msg_id), not stored again",
            err.trim_end()
        )
    );
    assert_eq!(stored(b.local_addr(), "m").await, 1);

    // Stdin in batches of 1000, batch n with the id `run1-<n>`.
    let lines: String = (0..2500).map(|i| format!("line {i}\n")).collect();
    let many = ["pub", "s", "--msg-id-prefix", "run1", "--broker", &a];
    let (_, err) = ok(&many, lines.as_bytes()).await;
    assert!(err.starts_with("published 2500 records to s"), "{err}");
    let (_, again) = ok(&many, lines.as_bytes()).await;
    assert!(
        again.contains("; 2500 of them stored before (duplicate msg_id)"),
        "{again}"
    );
    assert_eq!(stored(b.local_addr(), "s").await, 2500);

    // One id is one publish: stdin as one batch at most.
    let (_, err) = ok(&["pub", "s1", "--msg-id", "x", "--broker", &a], b"a\nb\n").await;
    assert!(err.starts_with("published 2 records to s1"), "{err}");
    let too_many: String = (0..1001).map(|i| format!("{i}\n")).collect();
    let out = run(
        &["pub", "s2", "--msg-id", "y", "--broker", &a],
        too_many.as_bytes(),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--msg-id names one publish"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
