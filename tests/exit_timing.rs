//! The built binary leaves promptly once it has said `shutdown complete`: with
//! clients, a subscriber, an HTTP keep-alive connection, an SSE stream and a driver
//! running when SIGTERM comes, it is gone within 500 ms of that line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::drivers::{config_text, driver};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// The value of `key=` in a log line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(&format!("{key}="))
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

#[test]
fn the_process_exits_within_500_ms_of_shutdown_complete() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[gateway]\nhttp_bind = \"127.0.0.1:0\"\n{}",
        driver("conf", "conformance", "")
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config_text(&dir.path().join("data"), &body)).unwrap();
    let mut child = Command::new(BIN)
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), line));
        }
    });
    // Every line read so far: a line may come before the one waited for just then.
    let mut seen: Vec<(Instant, String)> = Vec::new();
    let mut wait_for = |parts: &[&str]| -> (Instant, String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(hit) = seen
                .iter()
                .find(|(_, l)| parts.iter().all(|p| l.contains(p)))
            {
                return hit.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let next = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line with {parts:?}"));
            seen.push(next);
        }
    };
    let http = field(&wait_for(&["http gateway listening"]).1, "addr").to_string();
    let broker = field(&wait_for(&["broker started"]).1, "addr").to_string();
    wait_for(&["driver alive", "driver=conf"]);

    // A client that published, one subscribed to the topic, an idle HTTP keep-alive
    // connection and an SSE stream.
    let mut publisher = TcpStream::connect(&broker).unwrap();
    publisher
        .write_all(&common::topic_env(
            "publish",
            &[("topic", "t"), ("id", "1")],
            b"x",
        ))
        .unwrap();
    let mut ack = [0u8; 1];
    publisher.read_exact(&mut ack).unwrap();
    let mut subscriber = TcpStream::connect(&broker).unwrap();
    subscriber
        .write_all(&common::topic_env(
            "subscribe",
            &[("topic", "t"), ("from", "earliest")],
            b"",
        ))
        .unwrap();
    subscriber.read_exact(&mut ack).unwrap();
    let mut idle = TcpStream::connect(&http).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    idle.read_exact(&mut ack).unwrap();
    let mut sse = TcpStream::connect(&http).unwrap();
    sse.write_all(b"GET /v1/topics/t/stream?from=earliest HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    sse.read_exact(&mut ack).unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (complete, _) = wait_for(&["shutdown complete"]);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            complete.elapsed() < Duration::from_secs(10),
            "still running 10 s after shutdown complete"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let after = complete.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        after < Duration::from_millis(500),
        "exited {after:?} after `shutdown complete`"
    );
}
