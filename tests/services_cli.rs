//! `switchyard serve` with a shell command, called with `switchyard call`, listed by
//! `switchyard services`, registered again after the broker restarts; and discovery over
//! HTTP (`/v1/services`, `/metrics`) and gRPC (`ListServices`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::cli::{self, Running};
use common::drivers::Tcp;
use common::http;
use switchyard_codecs::Envelope;

/// Waits up to 20 s for `text` on the command's stderr.
async fn stderr_has(r: &Running, text: &str, times: usize) {
    for _ in 0..2000 {
        if r.stderr().matches(text).count() >= times {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {text:?} ({times}x) on stderr:\n{}", r.stderr());
}

#[actix::test]
async fn a_shell_one_liner_becomes_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let b = cli::broker(dir.path(), "").await;
    let addr = b.local_addr().to_string();
    let server = Running::spawn(&[
        "serve",
        "svc:upper",
        "--id",
        "u1",
        "--max-inflight",
        "4",
        "--broker",
        &addr,
        "--",
        "sh",
        "-c",
        "tr a-z A-Z",
    ]);
    stderr_has(
        &server,
        "serving svc:upper as instance u1 (group svc:upper, max_inflight 4)",
        1,
    )
    .await;
    let (out, _) = cli::ok(
        &["call", "svc:upper", "up", "hello", "--broker", &addr],
        b"",
    )
    .await;
    assert_eq!(out, "HELLO\n");

    // Four at once, each its own process.
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let addr = addr.clone();
            tokio::task::spawn_local(async move {
                cli::ok(
                    &[
                        "call",
                        "svc:upper",
                        "up",
                        &format!("n{i}"),
                        "--broker",
                        &addr,
                    ],
                    b"",
                )
                .await
                .0
            })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        assert_eq!(c.await.unwrap(), format!("N{i}\n"));
    }

    let (table, _) = cli::ok(&["services", "--broker", &addr], b"").await;
    assert!(table.starts_with("SERVICE"), "{table}");
    let row = table.lines().nth(1).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    // SERVICE GROUP INSTANCES IN_FLIGHT CALLS ERRORS RETRIES ...
    assert_eq!(
        &cols[..7],
        ["svc:upper", "svc:upper", "1", "0", "5", "0", "0"],
        "{table}"
    );
    assert!(table.contains("  instance u1 client:"), "{table}");

    // The broker restarts: the service registers again and answers.
    let b = cli::restart(b, dir.path(), "").await;
    stderr_has(&server, "serving svc:upper as instance u1", 2).await;
    let (out, _) = cli::ok(&["call", "svc:upper", "up", "back", "--broker", &addr], b"").await;
    assert_eq!(out, "BACK\n");
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_failing_command_is_an_error_return_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let b = cli::broker(dir.path(), "").await;
    let addr = b.local_addr().to_string();
    let server = Running::spawn(&[
        "serve",
        "svc:picky",
        "--broker",
        &addr,
        "--",
        "sh",
        "-c",
        "echo \"no $SWITCHYARD_METHOD here\" >&2; exit 3",
    ]);
    stderr_has(&server, "serving svc:picky", 1).await;
    let out = cli::run(&["call", "svc:picky", "frob", "x", "--broker", &addr], b"").await;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: the broker answered: no frob here"
    );
    // A second instance in another group is refused, and serve exits 1 saying why.
    let mut other = Running::spawn(&[
        "serve",
        "svc:picky",
        "--group",
        "g2",
        "--broker",
        &addr,
        "--",
        "cat",
    ]);
    assert!(!other.exit().await.success());
    assert!(
        other
            .stderr()
            .contains("service svc:picky is served by group svc:picky, not g2"),
        "{}",
        other.stderr()
    );
    b.run_until(async {}).await;
}

#[actix::test]
async fn services_over_http_grpc_and_metrics() {
    let (b, _dir, _g) = common::gateway::start("").await;
    let h = b.gateway().http.unwrap();
    let mut inst = Tcp::connect(b.local_addr()).await;
    inst.send(
        &Envelope::new("rpc", "register")
            .with_label("feature", "svc:echo")
            .with_label("id", "e1"),
    )
    .await;
    assert!(inst
        .next(Duration::from_secs(5))
        .await
        .unwrap()
        .is("rpc", "registered"));
    let mut caller = Tcp::connect(b.local_addr()).await;
    caller
        .send(
            &Envelope::new("rpc", "call")
                .with_label("rpcID", "1")
                .with_label("feature", "svc:echo")
                .with_label("method", "m")
                .with_payload(&b"hi"[..]),
        )
        .await;
    let call = inst.next(Duration::from_secs(5)).await.unwrap();
    inst.send(
        &Envelope::new("rpc", "return")
            .with_label("rpcID", "1")
            .with_label("caller", call.labels.get_str("caller").unwrap().to_string())
            .with_payload(&b"hi"[..]),
    )
    .await;
    assert!(caller
        .next(Duration::from_secs(5))
        .await
        .unwrap()
        .is("rpc", "return"));

    let v = http::get(h, "/v1/services").await.json();
    let s = &v["services"][0];
    assert_eq!(
        (
            s["name"].as_str(),
            s["calls"].as_u64(),
            s["errors"].as_u64()
        ),
        (Some("svc:echo"), Some(1), Some(0))
    );
    assert!(s["latency_us"]["p50"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(s["instances"][0]["id"], "e1");
    assert_eq!(
        s["instances"][0]["peer"],
        inst.s.local_addr().unwrap().to_string()
    );

    let metrics = http::get(h, "/metrics").await.text();
    for line in [
        "switchyard_service_calls_total{service=\"svc:echo\"} 1\n",
        "switchyard_service_errors_total{service=\"svc:echo\"} 0\n",
        "switchyard_service_instances{service=\"svc:echo\"} 1\n",
        "switchyard_service_in_flight{service=\"svc:echo\"} 0\n",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert!(metrics
        .contains("switchyard_service_latency_seconds{service=\"svc:echo\",quantile=\"0.99\"}"));

    let mut g = common::gateway::grpc(&b).await;
    let reply = g
        .list_services(switchyard_actors::gateway::pb::ListServicesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.services.len(), 1);
    assert_eq!(reply.services[0].name, "svc:echo");
    assert_eq!(reply.services[0].calls, 1);
    assert_eq!(reply.services[0].instances[0].id, "e1");
    b.run_until(async {}).await;
}
