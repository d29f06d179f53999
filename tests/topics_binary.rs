//! Topics through the built binary: the `pub`, `sub` and `topics` commands, and
//! `kill -9` of the broker while publishing under `fsync = "always"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchyard_actors::storage::{LogConfig, PartitionLog};
use switchyard_codecs::{Frame, FrameCodec, Limits};
use tokio_util::codec::Decoder;

mod common;
use common::topic_env as env;

fn spawn_broker(dir: &Path) -> (std::process::Child, String) {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nbind = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\nfsync = \"always\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "the broker exited");
        if let Some(rest) = line.split("listening listener=broker addr=").nth(1) {
            break rest.trim().to_string();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in err.lines() {});
    (child, addr)
}

#[test]
fn the_pub_sub_and_topics_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, addr) = spawn_broker(dir.path());
    let bin = env!("CARGO_BIN_EXE_switchyard");
    let out = Command::new(bin)
        .args(["pub", "cli", "first", "--broker", &addr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(bin)
        .args(["pub", "cli", "--broker", &addr])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"second\nthird\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("published 2 records to cli"));
    let out = Command::new(bin)
        .args([
            "sub", "cli", "--from", "earliest", "--max", "3", "--group", "g", "--broker", &addr,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0 0 first\n0 1 second\n0 2 third\n"
    );
    let out = Command::new(bin)
        .args(["topics", "--broker", &addr])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cli") && text.contains("group g partition 0: committed 3, lag 0"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("cli ")
            && l.ends_with("routing round_robin, fsync always, retention none / none")),
        "{text}"
    );
    broker.kill().unwrap();
    broker.wait().unwrap();
}

/// Publishes with `fsync = "always"` until the broker process is killed with
/// SIGKILL; every acknowledged message is in the log afterwards, none twice.
#[test]
fn kill_9_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_broker(dir.path());
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = s.try_clone().unwrap();
    // Publish 64 at a time, in flight together; read acks as they come.
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let acks = std::thread::spawn(move || {
        let mut codec = FrameCodec::detect(Limits::default());
        let mut buf = BytesMut::new();
        let mut chunk = [0u8; 65536];
        loop {
            while let Ok(Some(Frame::Envelope(e))) = codec.decode(&mut buf) {
                if e.is("topic", "ack") {
                    let _ = tx.send(e.labels.get_str("id").unwrap().parse().unwrap());
                }
            }
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    let start = Instant::now();
    let mut sent = 0u64;
    let mut acked = Vec::new();
    while acked.len() < 500 && start.elapsed() < Duration::from_secs(20) {
        let mut out = Vec::new();
        for _ in 0..64 {
            out.extend(env(
                "publish",
                &[("topic", "durable"), ("id", &sent.to_string())],
                format!("message {sent}").as_bytes(),
            ));
            sent += 1;
        }
        if s.write_all(&out).is_err() {
            break;
        }
        while let Ok(id) = rx.recv_timeout(Duration::from_millis(5)) {
            acked.push(id);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    while let Ok(id) = rx.try_recv() {
        acked.push(id);
    }
    let _ = acks.join();
    assert!(
        acked.len() >= 100,
        "only {} acks before the kill",
        acked.len()
    );

    let (log, _) =
        PartitionLog::open(&dir.path().join("data/durable/0"), LogConfig::default()).unwrap();
    let recs = log.read(0, usize::MAX).unwrap();
    let values: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    let unique: std::collections::HashSet<&String> = values.iter().collect();
    assert_eq!(unique.len(), values.len(), "no message stored twice");
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.offset, i as u64, "offsets are contiguous");
    }
    for id in &acked {
        assert!(
            unique.contains(&format!("message {id}")),
            "acked message {id} lost after kill -9"
        );
    }
}
