//! Helpers for the end-to-end tests: a broker on port 0, real TCP clients, and a
//! captured log to check what the broker said.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod auth;
pub mod cli;
pub mod drivers;
pub mod gateway;
pub mod http;
pub mod remote;
pub mod tls;
pub mod topics;

use bytes::BytesMut;
use switchyard::{Broker, Config};
use switchyard_codecs::Envelope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const ALIVE: &[u8] = b"state alive 0 0\n";
pub const PING: &[u8] = b"command ping 0 0\n";

/// The log lines the broker wrote while the guard lives, on this thread (the broker
/// runs on the test's own actix System).
///
/// One global subscriber writes every event to the buffer of the thread it happens
/// on: per-thread default subscribers would race on tracing's callsite-interest cache
/// when tests run in parallel, and lose events.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Log>> = const { std::cell::RefCell::new(None) };
}

/// Stops capturing on this thread when dropped.
pub struct LogGuard;

impl Drop for LogGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// Writes to the capturing log of the current thread, if any.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CURRENT.with(|c| {
            if let Some(log) = c.borrow().as_ref() {
                log.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    pub fn capture() -> (Log, LogGuard) {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            let sub = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(|| ThreadWriter)
                .finish();
            let _ = tracing::subscriber::set_global_default(sub);
        });
        let log = Log::default();
        CURRENT.with(|c| *c.borrow_mut() = Some(log.clone()));
        (log, LogGuard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The first line containing every one of `parts`.
    pub fn line_with(&self, parts: &[&str]) -> Option<String> {
        self.text()
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_string)
    }

    pub async fn wait_for(&self, parts: &[&str]) -> String {
        for _ in 0..500 {
            if let Some(l) = self.line_with(parts) {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no log line with {parts:?}; log:\n{}", self.text());
    }
}

/// A config on port 0 with `extra` lines added to `[broker]`, and its storage in a
/// fresh folder under the system's temp dir (never the working directory's `data`).
pub fn config(broker_extra: &str) -> Config {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchyard-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    Config::parse(
        &format!(
            "[broker]\nbind = \"127.0.0.1:0\"\n{broker_extra}\n[storage]\ndir = \"{}\"\n[shutdown]\ngrace_ms = 2000\n",
            dir.display()
        ),
        "test",
    )
    .unwrap()
}

pub async fn start(broker_extra: &str) -> Broker {
    switchyard::start(&config(broker_extra)).await.unwrap()
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// Sends a ping and expects `state alive` back.
pub async fn ping(c: &mut TcpStream) {
    c.write_all(PING).await.unwrap();
    let mut buf = [0u8; ALIVE.len()];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut buf))
        .await
        .expect("ping answered in time")
        .unwrap();
    assert_eq!(&buf, ALIVE);
}

/// Reads until the broker closes the connection; true if it did within 5 s.
pub async fn closed_by_peer(c: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Waits until `f` holds, up to 5 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A `topic <subject>` envelope's bytes.
pub fn topic_env(subject: &str, labels: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut e = Envelope::new("topic", subject.to_string()).with_payload(payload.to_vec());
    for (k, v) in labels {
        e.labels.insert(k.to_string(), v.to_string());
    }
    let mut b = BytesMut::new();
    e.encode(&mut b).unwrap();
    b.to_vec()
}

/// The `.log` files of a partition folder, oldest first.
pub fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}
