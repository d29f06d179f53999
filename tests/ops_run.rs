//! The built binary as a service manager and a log pipeline meet it: JSON log lines
//! that parse one by one and carry span fields, `sd_notify` readiness, reload and stop
//! through `NOTIFY_SOCKET`, and `switchyard health` against `/healthz`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// The broker on ports 0 in `dir`, its stderr lines sent to the receiver.
fn spawn(
    dir: &std::path::Path,
    log: &str,
    args: &[&str],
    env: &[(&str, &std::path::Path)],
) -> (Child, mpsc::Receiver<String>) {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[broker]\nbind = \"127.0.0.1:0\"\n[gateway]\nhttp_bind = \"127.0.0.1:0\"\n\
             [storage]\ndir = \"data\"\n{log}"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&config)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Reads JSON lines until one satisfies `want`; every line must parse.
fn json_until(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<Value>,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no such line; read {seen:#?}"));
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one JSON object: {e}: {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "no `{key}` in {line}");
        }
        seen.push(v.clone());
        if want(&v) {
            return v;
        }
    }
}

fn addr_of(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<Value>,
    message: &str,
    listener: Option<&str>,
) -> String {
    let v = json_until(rx, seen, |v| {
        v["message"] == message && listener.is_none_or(|l| v["listener"] == l)
    });
    v["addr"].as_str().unwrap().to_string()
}

fn kill(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn json_logs_parse_line_by_line_and_carry_span_fields() {
    let dir = tempfile::tempdir().unwrap();
    // `[log] format = "json"` alone, no flag.
    let (mut child, rx) = spawn(dir.path(), "[log]\nformat = \"json\"\n", &[], &[]);
    let mut seen = Vec::new();
    let v = json_until(&rx, &mut seen, |v| v["message"] == "switchyard starting");
    assert!(v["version"].as_str().unwrap().contains("commit "), "{v}");
    let broker = addr_of(&rx, &mut seen, "listening", Some("broker"));
    let mut c = TcpStream::connect(&broker).unwrap();
    c.write_all(b"topic publish x y\n").unwrap();
    let local = c.local_addr().unwrap().to_string();
    let v = json_until(&rx, &mut seen, |v| {
        v["message"] == "malformed frame, closing connection"
    });
    assert_eq!(v["level"], "WARN", "{v}");
    assert_eq!(v["offset"], 0, "event fields at the top level: {v}");
    assert_eq!(v["span"]["name"], "conn", "the current span: {v}");
    assert_eq!(v["span"]["peer"], local.as_str(), "span fields: {v}");
    assert_eq!(v["spans"][0]["proto"], "dipper", "the span list: {v}");
    kill(child.id(), "TERM");
    json_until(&rx, &mut seen, |v| v["message"] == "shutdown complete");
    assert!(wait_exit(&mut child).success());

    // The flag wins over the config: text lines.
    let (mut child, rx) = spawn(
        dir.path(),
        "[log]\nformat = \"json\"\n",
        &["--log-format", "text"],
        &[],
    );
    let line = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert!(serde_json::from_str::<Value>(&line).is_err(), "{line}");
    assert!(line.contains("INFO"), "{line}");
    // SIGTERM before the handler is installed would kill it outright.
    while !rx
        .recv_timeout(Duration::from_secs(15))
        .unwrap()
        .contains("broker started")
    {}
    kill(child.id(), "TERM");
    assert!(wait_exit(&mut child).success());
}

/// The broker says READY=1 only once its ports answer, RELOADING=1 then READY=1 around
/// a SIGHUP, STOPPING=1 at SIGTERM; `switchyard health` probes `/healthz` meanwhile.
#[test]
fn sd_notify_tracks_ready_reload_and_stop_and_health_probes_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let (mut child, rx) = spawn(
        dir.path(),
        "",
        &["--log-format", "json"],
        &[("NOTIFY_SOCKET", &sock_path)],
    );
    let recv = || {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    let ready = recv();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(
        ready.contains(&format!("MAINPID={}", child.id())),
        "{ready}"
    );
    // Ready means listening: both addresses are already in the log.
    let mut seen = Vec::new();
    let broker = addr_of(&rx, &mut seen, "listening", Some("broker"));
    let http = addr_of(&rx, &mut seen, "http gateway listening", None);
    TcpStream::connect(&broker).unwrap();

    let out = Command::new(BIN)
        .args(["health", "--addr", &http])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("200") && text.contains("serving"), "{text}");

    kill(child.id(), "HUP");
    let reloading = recv();
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    assert!(
        recv().lines().any(|l| l == "READY=1"),
        "ready after the reload"
    );

    kill(child.id(), "TERM");
    let stopping = recv();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    assert!(wait_exit(&mut child).success());

    // Nothing listens there any more: a failure, with the reason.
    let out = Command::new(BIN)
        .args(["health", "--addr", &http, "--timeout-ms", "500"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the gateway at"), "{err}");
}
