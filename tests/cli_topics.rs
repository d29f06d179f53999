//! `switchyard topics [list | create | delete]` and `switchyard bench maze -c` through
//! the built binary against an in-process broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cli::{broker, create, ok, run};

#[actix_rt::test]
async fn topics_create_then_list() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "").await;
    let a = b.local_addr().to_string();
    let out = create(
        &a,
        &[
            "orders",
            "--partitions",
            "3",
            "--routing",
            "key_hash",
            "--fsync",
            "interval",
            "--fsync-interval-ms",
            "250",
            "--retention-ms",
            "60000",
            "--retention-bytes",
            "1048576",
        ],
    )
    .await;
    let options =
        "routing key_hash, fsync interval every 250 ms, retention 60000 ms / 1048576 bytes";
    assert_eq!(
        out,
        format!("created topic orders: 3 partitions, {options}\n")
    );
    // The same options again: the topic is as asked, not an error.
    create(&a, &["orders", "--routing", "key_hash"]).await;
    let clash = run(
        &[
            "topics",
            "create",
            "orders",
            "--routing",
            "round_robin",
            "--broker",
            &a,
        ],
        b"",
    )
    .await;
    assert!(!clash.status.success());
    assert_eq!(
        String::from_utf8_lossy(&clash.stderr),
        "error: the broker answered: topic `orders` exists with routing key_hash, not round_robin\n"
    );
    let bad = run(
        &[
            "topics",
            "create",
            "t2",
            "--fsync",
            "never",
            "--fsync-interval-ms",
            "5",
            "--broker",
            &a,
        ],
        b"",
    )
    .await;
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("fsync_interval_ms needs fsync = interval")
    );

    // `topics` is `topics list`; a host name reaches the broker too.
    let host = format!("localhost:{}", b.local_addr().port());
    let (plain, _) = ok(&["topics", "--broker", &a], b"").await;
    let (listed, _) = ok(&["topics", "list", "--broker", &host], b"").await;
    assert_eq!(plain, listed);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("orders ") && l.ends_with(options)),
        "{listed}"
    );
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("orders ")).count(),
        4,
        "{listed}"
    );
}

#[actix_rt::test]
async fn topics_delete_removes_a_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "").await;
    let a = b.local_addr().to_string();
    create(&a, &["gone", "--partitions", "2"]).await;
    ok(&["pub", "gone", "x", "--broker", &a], b"").await;
    let (out, _) = ok(&["topics", "delete", "gone", "--broker", &a], b"").await;
    assert_eq!(out, "deleted topic gone\n");
    let (listed, _) = ok(&["topics", "--broker", &a], b"").await;
    assert!(!listed.lines().any(|l| l.starts_with("gone ")), "{listed}");
    let again = run(&["topics", "delete", "gone", "--broker", &a], b"").await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).starts_with("error: the broker answered: "));
}

#[actix_rt::test]
async fn bench_maze_takes_its_ports_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&common::cli::config_at(
        dir.path(),
        "127.0.0.1:0",
        "[maze]\nevent_bind = \"127.0.0.1:0\"\nclient_bind = \"127.0.0.1:0\"",
    ))
    .await
    .unwrap();
    let m = b.maze().unwrap();
    let cfg = dir.path().join("bench.toml");
    std::fs::write(
        &cfg,
        format!(
            "[maze]\nevent_bind = \"{}\"\nclient_bind = \"{}\"\n",
            m.event_addr, m.client_addr
        ),
    )
    .unwrap();
    let (report, _) = ok(
        &[
            "bench",
            "maze",
            "-c",
            cfg.to_str().unwrap(),
            "--total-events",
            "2000",
            "--concurrency-level",
            "5",
            "--quiet",
        ],
        b"",
    )
    .await;
    assert!(report.contains("PASS"), "{report}");
}
