//! Helpers for the end-to-end tests: a broker on port 0, real TCP clients, and a
//! captured log to check what the broker said.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::{Broker, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::subscriber::DefaultGuard;

pub const ALIVE: &[u8] = b"state alive 0 0\n";
pub const PING: &[u8] = b"command ping 0 0\n";

/// The log lines the broker wrote while the guard lives (this thread only: the
/// broker runs on the test's own actix System).
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    pub fn capture() -> (Log, DefaultGuard) {
        let log = Log::default();
        let writer = log.clone();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        (log.clone(), tracing::subscriber::set_default(sub))
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

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A config on port 0 with `extra` lines added to `[broker]`.
pub fn config(broker_extra: &str) -> Config {
    Config::parse(
        &format!("[broker]\nbind = \"127.0.0.1:0\"\n{broker_extra}\n[shutdown]\ngrace_ms = 2000\n"),
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
