//! `switchyard health`: asks a running broker's gateway for `GET /healthz` and exits 0
//! only when it answers 200 (serving). What a container's `HEALTHCHECK` or a load
//! balancer's probe script runs; `/healthz` needs no login.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;

/// The most of the answer read: `/healthz` answers a few dozen bytes.
const MAX_ANSWER: u64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{0}")]
    Config(String),
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot reach the gateway at {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("not serving: {0}")]
    NotServing(String),
}

/// Asks `addr` (or the config's `gateway.http_bind`) within `timeout`; the answer's
/// status line and body on success.
pub fn check(
    addr: Option<&str>,
    config: Option<&Path>,
    timeout: Duration,
) -> Result<String, HealthError> {
    let addr = match addr {
        Some(a) => a
            .to_socket_addrs()
            .map_err(|source| HealthError::Resolve {
                addr: a.to_string(),
                source,
            })?
            .next()
            .ok_or_else(|| HealthError::Config(format!("{a} resolves to no address")))?,
        None => from_config(config)?,
    };
    let io = |source| HealthError::Io { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: switchyard\r\nconnection: close\r\n\r\n")
        .map_err(io)?;
    let mut answer = String::new();
    s.take(MAX_ANSWER).read_to_string(&mut answer).map_err(io)?;
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim())
        .unwrap_or_default();
    if status.split(' ').nth(1) == Some("200") {
        Ok(format!("{status}: {body}"))
    } else if status.is_empty() {
        Err(HealthError::NotServing(format!(
            "{addr} closed the connection without an answer"
        )))
    } else {
        Err(HealthError::NotServing(format!("{status}: {body}")))
    }
}

fn from_config(config: Option<&Path>) -> Result<SocketAddr, HealthError> {
    let (c, _) = Config::load(config).map_err(|e| HealthError::Config(e.to_string()))?;
    let g = c.gateway.ok_or_else(|| {
        HealthError::Config("the config has no [gateway], so no /healthz: give --addr".into())
    })?;
    if g.tls {
        return Err(HealthError::Config(
            "gateway.tls is on and `switchyard health` speaks plain HTTP: probe /healthz with an HTTPS client".into(),
        ));
    }
    let mut a = g.http_bind.ok_or_else(|| {
        HealthError::Config("the config has no gateway.http_bind: give --addr".into())
    })?;
    // A broker bound to every address answers on loopback too.
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(a)
}

/// The command: prints the answer, exits 0 when serving.
pub fn command(addr: Option<&str>, config: Option<&Path>, timeout: Duration) -> ExitCode {
    match check(addr, config, timeout) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
