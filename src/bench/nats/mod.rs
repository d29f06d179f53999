//! `switchyard bench nats`: the same measurements as `bench rpc`, `bench pub` and
//! `bench pubsub`, made against a NATS server with a client of our own over the NATS
//! text protocol, so both brokers are measured by the same client code on the same
//! machine (see `scripts/bench-compare`).
//!
//! - [`proto`]: the server operations a client reads, parsed in place;
//! - [`conn`]: a connection (handshake, buffered reads, batched writes);
//! - [`rpc`]: request/reply through a responder, and the server's own `PING`/`PONG`;
//! - [`flow`]: publishes without replies, and one producer fanned out to subscribers.

mod conn;
mod flow;
pub mod proto;
mod rpc;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Rpc,
    Pub,
    Fanout,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub server: SocketAddr,
    /// The subject published to (requests, records).
    pub subject: String,
    /// Bytes per payload.
    pub size: usize,
    /// Calls per run, or records in all.
    pub count: u64,
    /// Requests outstanding in the second `rpc` run (0 or 1: one run only).
    pub inflight: u64,
    /// Requests made before each `rpc` run and not measured.
    pub warmup: u64,
    /// Subscribers of `fanout`, each reading every record.
    pub subscribers: usize,
    /// A subscriber that gets nothing for this long stops and reports what it missed.
    pub idle: Duration,
}

#[derive(Debug, Error)]
pub enum NatsError {
    #[error("connect {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Proto(#[from] proto::ProtoError),
    #[error("the server said -ERR '{0}'")]
    Server(String),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("nothing read for the idle timeout")]
    Idle,
    #[error("output: {0}")]
    Output(std::io::Error),
    #[error("{0}")]
    Bench(String),
}

impl NatsError {
    fn server(text: &[u8]) -> NatsError {
        NatsError::Server(String::from_utf8_lossy(text).into_owned())
    }
}

/// The `version` of an `INFO` object, for the report.
fn server_version(info: &str) -> String {
    serde_json::from_str::<serde_json::Value>(info)
        .ok()
        .and_then(|v| v.get("version")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

/// Runs the mode's bench against `o.server` and prints its report to `out`.
pub fn run(o: &Options, out: &mut impl Write) -> Result<(), NatsError> {
    let (_, _, info) = conn::connect(o.server)?;
    writeln!(out, "nats-server {} at {}", server_version(&info), o.server)
        .map_err(NatsError::Output)?;
    match o.mode {
        Mode::Rpc => rpc::run(o, out),
        Mode::Pub => flow::publish(o, out),
        Mode::Fanout => flow::fanout(o, out),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_of_info() {
        let cases = [
            (
                r#"{"server_id":"N","version":"2.15.1","go":"go1.24"}"#,
                "2.15.1",
            ),
            (r#"{"server_id":"N"}"#, "?"),
            ("not json", "?"),
        ];
        for (info, want) in cases {
            assert_eq!(super::server_version(info), want, "{info}");
        }
    }
}
