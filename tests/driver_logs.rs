//! A driver that floods its stderr cannot flood the broker's log or starve it: its
//! lines pass a token bucket (the rest are dropped, counted and reported once a second)
//! and each is cut at `log_line_bytes`, however long it runs without a newline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use common::drivers::*;
use common::{http, Log};

/// One 5 MB line, then as many short lines as bash can write.
const FLOOD: &str = "#!/bin/bash\nhead -c 5000000 /dev/zero | tr '\\0' 'A' >&2\necho >&2\nwhile :; do echo \"flood line\" >&2; done\n";

#[actix::test]
async fn a_stderr_flood_is_rate_limited_counted_and_cut() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("flood.sh");
    std::fs::write(&script, FLOOD).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let body = format!(
        "[gateway]\nhttp_bind = \"127.0.0.1:0\"\n\
         [[driver]]\nname = \"noisy\"\ncommand = \"{}\"\nstart_timeout_ms = 600000\n",
        script.display()
    );
    let text = config_text(dir.path(), &body).replace(
        "[drivers]\n",
        "[drivers]\nlog_lines_per_sec = 20\nlog_burst = 5\nlog_line_bytes = 1000\n",
    );
    let started = Instant::now();
    let b = switchyard::start(&switchyard::Config::parse(&text, "test").unwrap())
        .await
        .unwrap();

    // Dropped lines are reported in one line a second, with their count.
    log.wait_for(&[
        "driver log lines dropped over log_lines_per_sec",
        "driver=noisy",
        "dropped=",
    ])
    .await;
    let long = log.wait_for(&["driver=noisy", "[4999000 bytes cut]"]).await;
    assert!(
        long.contains(&"A".repeat(1000)) && !long.contains(&"A".repeat(1001)),
        "cut at 1000"
    );

    // The broker answers while the flood goes on.
    let mut c = Tcp::connect(b.local_addr()).await;
    let r = c
        .call(
            &[("rpcID", "1"), ("feature", "broker"), ("method", "ping")],
            b"",
        )
        .await;
    assert_eq!(&r.payload[..], b"pong");
    let st = wait_driver(&b, "noisy", 10, |s| s.log_lines_dropped > 1000).await;
    let metrics = http::get(b.gateway().http.unwrap(), "/metrics")
        .await
        .text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("switchyard_driver_log_lines_dropped_total{driver=\"noisy\"}"))
        .expect(&metrics);
    let counted: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(counted >= st.log_lines_dropped, "{line}");

    // What reached the log is within the bucket: the burst, then 20 a second.
    let text = log.text();
    let logged = text
        .lines()
        .filter(|l| l.contains("driver=noisy stream=\"stderr\""))
        .count() as f64;
    let allowed = 5.0 + 20.0 * started.elapsed().as_secs_f64() + 1.0;
    assert!(
        logged >= 2.0 && logged <= allowed,
        "{logged} lines logged, {allowed} allowed"
    );
    b.run_until(async {}).await;
}
