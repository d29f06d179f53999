//! Idempotent publish through the built binary: publishes with a `msg_id` each, in
//! flight, until the broker is killed with SIGKILL; after a restart on the same data
//! dir, publishing every one of them again stores each message exactly once, and every
//! acknowledged one is answered as a duplicate with its first partition and offset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio_util::codec::Decoder;

mod common;
use common::topic_env as env;

fn spawn_broker(dir: &Path) -> (Child, String) {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nbind = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\nfsync = \"always\"\n[topics]\ndefault_partitions = 2\n",
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
    std::thread::spawn(move || for _ in err.lines() {});
    (child, addr)
}

/// Reads envelopes from `s` on a thread; acks (and errors) come out of the channel.
fn answers(s: &TcpStream) -> std::sync::mpsc::Receiver<Envelope> {
    let mut reader = s.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut codec = FrameCodec::detect(Limits::default());
        let mut buf = BytesMut::new();
        let mut chunk = [0u8; 65536];
        loop {
            while let Ok(Some(Frame::Envelope(e))) = codec.decode(&mut buf) {
                let _ = tx.send(e);
            }
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    rx
}

fn publish_env(n: u64) -> Vec<u8> {
    let id = n.to_string();
    let msg_id = format!("msg-{n}");
    env(
        "publish",
        &[("topic", "idem"), ("id", &id), ("msg_id", &msg_id)],
        format!("message {n}").as_bytes(),
    )
}

fn where_of(e: &Envelope) -> (String, String) {
    let l = |n| e.labels.get_str(n).unwrap_or_default().to_string();
    (l("partition"), l("offset"))
}

#[test]
fn after_kill_9_every_acked_msg_id_is_still_known() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_broker(dir.path());
    let mut s = TcpStream::connect(&addr).unwrap();
    let rx = answers(&s);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut acked: HashMap<u64, (String, String)> = HashMap::new();
    while acked.len() < 300 && start.elapsed() < Duration::from_secs(20) {
        let mut out = Vec::new();
        for _ in 0..64 {
            out.extend(publish_env(sent));
            sent += 1;
        }
        if s.write_all(&out).is_err() {
            break;
        }
        while let Ok(e) = rx.recv_timeout(Duration::from_millis(5)) {
            if e.is("topic", "ack") {
                acked.insert(
                    e.labels.get_str("id").unwrap().parse().unwrap(),
                    where_of(&e),
                );
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    while let Ok(e) = rx.try_recv() {
        if e.is("topic", "ack") {
            acked.insert(
                e.labels.get_str("id").unwrap().parse().unwrap(),
                where_of(&e),
            );
        }
    }
    assert!(
        acked.len() >= 100,
        "only {} acks before the kill",
        acked.len()
    );

    let (mut child, addr) = spawn_broker(dir.path());
    let mut s = TcpStream::connect(&addr).unwrap();
    let rx = answers(&s);
    let mut out = Vec::new();
    for n in 0..sent {
        out.extend(publish_env(n));
    }
    s.write_all(&out).unwrap();
    let mut again = HashMap::new();
    while again.len() < sent as usize {
        let e = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("every publish answered");
        assert!(e.is("topic", "ack"), "{e:?}");
        let n: u64 = e.labels.get_str("id").unwrap().parse().unwrap();
        again.insert(
            n,
            (where_of(&e), e.labels.get_str("duplicate") == Some("true")),
        );
    }
    for (n, first) in &acked {
        let (at, dup) = &again[n];
        assert!(dup, "acked msg-{n} stored again after kill -9");
        assert_eq!(at, first, "msg-{n} acked elsewhere after the restart");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Each message is stored exactly once over both runs.
    let mut total = 0u64;
    let mut seen = std::collections::HashSet::new();
    for p in 0..2 {
        let path = dir.path().join(format!("data/idem/{p}"));
        let (log, _) = switchyard_actors::storage::PartitionLog::open(
            &path,
            switchyard_actors::storage::LogConfig::default(),
        )
        .unwrap();
        for r in log.read(0, usize::MAX).unwrap() {
            total += 1;
            assert!(seen.insert(r.value.to_vec()), "a message stored twice");
        }
    }
    assert_eq!(total, sent);
}
