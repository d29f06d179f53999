//! Helpers for driver tests: configs that run the test driver, state waits, process
//! checks, and a TCP client that makes RPC calls.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use switchyard::{Broker, Config};
use switchyard_actors::drivers::{DriverState, DriverStatus};
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

pub const DRIVER: &str = env!("CARGO_BIN_EXE_switchyard-driver");

/// A `[[driver]]` table running the test driver of `kind`.
pub fn driver(name: &str, kind: &str, extra: &str) -> String {
    format!("[[driver]]\nname = \"{name}\"\ncommand = \"{DRIVER}\"\nargs = [\"{kind}\"]\n{extra}\n")
}

/// The text of a config on port 0 with fast restart and kill timings, plus `body`.
pub fn config_text(dir: &Path, body: &str) -> String {
    format!(
        "[broker]\nbind = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\n\
         [supervisor]\nmax_restarts = 3\nwithin_ms = 60000\nbackoff_ms = 50\nbackoff_max_ms = 200\n\
         [drivers]\nkill_grace_ms = 300\nstop_wait_ms = 500\n[shutdown]\ngrace_ms = 5000\n{body}",
        dir.display()
    )
}

pub fn config(dir: &Path, body: &str) -> Config {
    Config::parse(&config_text(dir, body), "test").unwrap()
}

/// Waits up to `secs` for driver `name` to satisfy `f`; returns its status.
pub async fn wait_driver(
    b: &Broker,
    name: &str,
    secs: u64,
    f: impl Fn(&DriverStatus) -> bool,
) -> DriverStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let all = b.drivers().await;
        if let Some(s) = all.iter().find(|s| s.name == name) {
            if f(s) {
                return s.clone();
            }
        }
        if tokio::time::Instant::now() > deadline {
            panic!("driver {name} never got there: {all:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn wait_alive(b: &Broker, name: &str) -> DriverStatus {
    wait_driver(b, name, 10, |s| s.state == DriverState::Alive).await
}

/// Is `pid` a live process (not gone, not a zombie)?
pub fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Waits up to 5 s for `pid` to be gone.
pub async fn gone(pid: u32) -> bool {
    for _ in 0..250 {
        if !running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Every pid the log says a driver process started with.
pub fn pids_in(log: &str, name: &str) -> Vec<u32> {
    log.lines()
        .filter(|l| l.contains("driver process started") && l.contains(&format!("driver={name} ")))
        .filter_map(|l| {
            l.split("pid=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// A TCP client of the broker port.
pub struct Tcp {
    pub s: TcpStream,
    codec: FrameCodec,
    buf: BytesMut,
}

impl Tcp {
    pub async fn connect(addr: SocketAddr) -> Tcp {
        Tcp {
            s: TcpStream::connect(addr).await.unwrap(),
            codec: FrameCodec::detect(Limits::default()),
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, e: &Envelope) {
        let mut b = BytesMut::new();
        e.encode(&mut b).unwrap();
        self.s.write_all(&b).await.unwrap();
    }

    /// Sends envelopes in one write: the broker reads them together.
    pub async fn send_all(&mut self, es: &[Envelope]) {
        let mut b = BytesMut::new();
        for e in es {
            e.encode(&mut b).unwrap();
        }
        self.s.write_all(&b).await.unwrap();
    }

    /// The next frame within `within`, or `None`.
    pub async fn next(&mut self, within: Duration) -> Option<Envelope> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(Frame::Envelope(e)) = self.codec.decode(&mut self.buf).unwrap() {
                return Some(e);
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends an `rpc call` and waits up to 15 s for its return.
    pub async fn call(&mut self, labels: &[(&str, &str)], payload: &[u8]) -> Envelope {
        let mut e = Envelope::new("rpc", "call").with_payload(payload.to_vec());
        for (k, v) in labels {
            e.labels.insert(k.to_string(), v.to_string());
        }
        self.send(&e).await;
        let id = e.labels.get_str("rpcID").unwrap().to_string();
        loop {
            let r = self
                .next(Duration::from_secs(15))
                .await
                .expect("an rpc return");
            if r.is("rpc", "return") && r.labels.get_str("rpcID") == Some(&id) {
                return r;
            }
        }
    }
}
