//! `switchyard pub`, `sub`, `topics`, `call` and `events`: small clients of the broker
//! port, speaking the `topic` channel with the same codec the broker uses.
//!
//! - [`tls`]: `--tls`, `--ca`, `--cert`/`--key`: how a client reaches a TLS port.

pub mod tls;

pub use tls::{Connector, TlsOptions};

use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;

use bytes::BytesMut;
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio_util::codec::Decoder;

pub use crate::login::Login;

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the broker at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the broker closed the connection")]
    Closed,
    #[error("the broker answered: {0}")]
    Broker(String),
    #[error("bad frame from the broker: {0}")]
    Frame(String),
    #[error("{0}")]
    Login(String),
    #[error("tls: {0}")]
    Tls(String),
}

/// Where a client connects, and how.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub connector: Connector,
    /// Logged in with right after connecting, when set.
    pub login: Option<Login>,
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target {
            addr,
            connector: Connector::default(),
            login: None,
        }
    }
}

/// A blocking connection to the broker port.
#[derive(Debug)]
pub struct Client {
    s: tls::Stream,
    codec: FrameCodec,
    buf: BytesMut,
}

impl Client {
    /// Connects (over TLS when the target's connector says so), and logs in when the
    /// target has a login.
    pub fn connect(to: impl Into<Target>) -> Result<Client, ClientError> {
        let to = to.into();
        let mut s = to.connector.connect(to.addr)?;
        if let Some(l) = &to.login {
            crate::login::login(&mut s, l).map_err(ClientError::Login)?;
        }
        Ok(Client {
            s,
            codec: FrameCodec::detect(Limits::default()),
            buf: BytesMut::new(),
        })
    }

    pub fn send(&mut self, e: &Envelope) -> Result<(), ClientError> {
        let mut b = BytesMut::with_capacity(e.encoded_len());
        e.encode(&mut b)
            .map_err(|e| ClientError::Frame(e.to_string()))?;
        self.s.write_all(&b)?;
        self.s.flush()?;
        Ok(())
    }

    /// The next envelope; a `topic error` becomes [`ClientError::Broker`].
    pub fn recv(&mut self) -> Result<Envelope, ClientError> {
        loop {
            match self
                .codec
                .decode(&mut self.buf)
                .map_err(|e| ClientError::Frame(e.to_string()))?
            {
                Some(Frame::Envelope(e)) if e.is("topic", "error") => {
                    return Err(ClientError::Broker(
                        e.labels.get_str("error").unwrap_or("?").to_string(),
                    ))
                }
                Some(Frame::Envelope(e)) => return Ok(e),
                Some(Frame::Oversize(o)) => {
                    return Err(ClientError::Frame(format!(
                        "the broker sent a frame of {} bytes, over the client's limit of {}",
                        o.size, o.max
                    )))
                }
                Some(Frame::Maze(_)) => continue,
                None => {}
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn label(e: &Envelope, name: &str) -> String {
    e.labels.get_str(name).unwrap_or_default().to_string()
}

/// Publishes `message`, or every line of stdin (in batches of up to 1000), and waits
/// for every ack. Returns how many records were stored.
pub fn publish(
    to: impl Into<Target>,
    topic: &str,
    key: Option<&str>,
    partition: Option<u32>,
    message: Option<&str>,
) -> Result<u64, ClientError> {
    let mut c = Client::connect(to)?;
    let base = |id: u64| {
        let mut e = Envelope::new("topic", "publish")
            .with_label("topic", topic.to_string())
            .with_label("id", id.to_string());
        if let Some(k) = key {
            e = e.with_label("key", k.to_string());
        }
        if let Some(p) = partition {
            e = e.with_label("partition", p.to_string());
        }
        e
    };
    let mut sent = 0u64;
    if let Some(m) = message {
        c.send(&base(0).with_payload(m.as_bytes().to_vec()))?;
        sent = 1;
    } else {
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        loop {
            let batch: Vec<String> = lines.by_ref().take(1000).collect::<Result<_, _>>()?;
            if batch.is_empty() {
                break;
            }
            let payload = switchyard_actors::topic::wire::batch_payload(
                batch.iter().map(|l| (None, l.as_bytes())),
            );
            c.send(
                &base(sent)
                    .with_label("count", batch.len().to_string())
                    .with_payload(payload),
            )?;
            sent += 1;
        }
    }
    let mut stored = 0;
    for _ in 0..sent {
        let ack = c.recv()?;
        stored += label(&ack, "count").parse::<u64>().unwrap_or(0);
        eprintln!(
            "{topic}/{} offset {} ({} records)",
            label(&ack, "partition"),
            label(&ack, "offset"),
            label(&ack, "count")
        );
    }
    Ok(stored)
}

/// Options of `switchyard sub` (the command line takes them as they are).
#[derive(Debug, Clone, clap::Args)]
pub struct SubOptions {
    pub topic: String,
    /// earliest, latest, committed or an offset [default: latest; in a group, committed]
    #[arg(long)]
    pub from: Option<String>,
    /// Join this consumer group (and commit what is printed)
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub partition: Option<u32>,
    /// Records in flight per partition
    #[arg(long, default_value_t = 1000)]
    pub credit: u64,
    /// Stop after this many records
    #[arg(long)]
    pub max: Option<u64>,
}

/// Prints each record as `<partition> <offset> <value>` until `max` or the broker
/// closes; in a group, commits what it printed.
pub fn subscribe(
    to: impl Into<Target>,
    o: &SubOptions,
    out: &mut impl Write,
) -> Result<u64, ClientError> {
    let mut c = Client::connect(to)?;
    let mut e = Envelope::new("topic", "subscribe")
        .with_label("topic", o.topic.clone())
        .with_label("sub", "cli")
        .with_label("credit", o.credit.to_string());
    for (k, v) in [
        ("from", o.from.clone()),
        ("group", o.group.clone()),
        ("partition", o.partition.map(|p| p.to_string())),
    ] {
        if let Some(v) = v {
            e = e.with_label(k, v);
        }
    }
    c.send(&e)?;
    let mut printed = 0u64;
    let mut since_credit = 0u64;
    while o.max.is_none_or(|m| printed < m) {
        let d = c.recv()?;
        if !d.is("topic", "deliver") {
            continue;
        }
        out.write_all(format!("{} {} ", label(&d, "partition"), label(&d, "offset")).as_bytes())?;
        out.write_all(&d.payload)?;
        out.write_all(b"\n")?;
        out.flush()?;
        printed += 1;
        since_credit += 1;
        if let Some(g) = &o.group {
            let offset: u64 = label(&d, "offset").parse().unwrap_or(0) + 1;
            c.send(
                &Envelope::new("topic", "commit")
                    .with_label("topic", o.topic.clone())
                    .with_label("group", g.clone())
                    .with_label("partition", label(&d, "partition"))
                    .with_label("offset", offset.to_string()),
            )?;
        }
        if since_credit * 2 >= o.credit {
            c.send(
                &Envelope::new("topic", "credit")
                    .with_label("sub", "cli")
                    .with_label("credit", since_credit.to_string()),
            )?;
            since_credit = 0;
        }
    }
    Ok(printed)
}

/// `switchyard topics`: each topic's options, its partitions' offsets and sizes, and
/// each group's lag.
pub fn topics(to: impl Into<Target>, out: &mut impl Write) -> Result<(), ClientError> {
    let mut c = Client::connect(to)?;
    c.send(&Envelope::new("topic", "list"))?;
    let list = c.recv()?;
    let topics: serde_json::Value =
        serde_json::from_slice(&list.payload).map_err(|e| ClientError::Frame(e.to_string()))?;
    writeln!(
        out,
        "{:<24} {:>9} {:>12} {:>12} {:>12} {:>8}",
        "topic", "partition", "start", "next", "bytes", "segments"
    )?;
    for t in topics.as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or("?");
        let limit = |v: &serde_json::Value, unit: &str| {
            v.as_u64()
                .map_or("none".to_string(), |n| format!("{n} {unit}"))
        };
        writeln!(
            out,
            "{:<24} routing {}, fsync {}{}, retention {} / {}",
            name,
            t["routing"].as_str().unwrap_or("?"),
            t["fsync"].as_str().unwrap_or("?"),
            t["fsync_interval_ms"]
                .as_u64()
                .map_or(String::new(), |ms| format!(" every {ms} ms")),
            limit(&t["retention_ms"], "ms"),
            limit(&t["retention_bytes"], "bytes"),
        )?;
        for (p, part) in t["partitions"].as_array().into_iter().flatten().enumerate() {
            writeln!(
                out,
                "{:<24} {:>9} {:>12} {:>12} {:>12} {:>8}",
                name,
                p,
                part["start_offset"].as_u64().unwrap_or(0),
                part["next_offset"].as_u64().unwrap_or(0),
                part["size_bytes"].as_u64().unwrap_or(0),
                part["segments"].as_u64().unwrap_or(0)
            )?;
            // Only what is wrong gets a line: a healthy listing reads as before.
            if let Some(err) = part["error"].as_str() {
                let state = part["state"].as_str().unwrap_or("?");
                writeln!(out, "{:<24} {:>9} {state}: {err}", name, p)?;
            }
            for r in part["damaged"].as_array().into_iter().flatten() {
                let (a, b) = (r[0].as_u64().unwrap_or(0), r[1].as_u64().unwrap_or(0));
                writeln!(out, "{:<24} {:>9} unreadable offsets {a}..={b}", name, p)?;
            }
        }
        for (group, offsets) in t["groups"].as_object().into_iter().flatten() {
            for (p, committed) in offsets.as_object().into_iter().flatten() {
                let next = t["partitions"][p.parse::<usize>().unwrap_or(0)]["next_offset"]
                    .as_u64()
                    .unwrap_or(0);
                let lag = next.saturating_sub(committed.as_u64().unwrap_or(0));
                writeln!(
                    out,
                    "{:<24} group {group} partition {p}: committed {committed}, lag {lag}",
                    name
                )?;
            }
        }
    }
    Ok(())
}

/// `switchyard call <feature> <method> [PARAMS]`: one RPC call from this client
/// (feature `client:<id>`); returns the result payload, or the `error` label.
pub fn call(
    to: impl Into<Target>,
    feature: &str,
    method: &str,
    params: &[u8],
    timeout: Option<&str>,
) -> Result<bytes::Bytes, ClientError> {
    let mut c = Client::connect(to)?;
    let mut env = Envelope::new("rpc", "call")
        .with_label("rpcID", "1")
        .with_label("feature", feature.to_string())
        .with_label("method", method.to_string())
        .with_label("caller", "-")
        .with_payload(bytes::Bytes::copy_from_slice(params));
    if let Some(t) = timeout {
        env = env.with_label("timeout", t.to_string());
    }
    c.send(&env)?;
    loop {
        let ret = c.recv()?;
        if !ret.is("rpc", "return") || ret.labels.get_str("rpcID") != Some("1") {
            continue;
        }
        return match ret.labels.get_str("error") {
            Some(e) => Err(ClientError::Broker(e.to_string())),
            None => Ok(ret.payload),
        };
    }
}

/// `switchyard events`: subscribes to the event bus and prints each event as
/// `<driver> <payload>` until the broker closes the connection.
pub fn events(to: impl Into<Target>, out: &mut impl Write) -> Result<(), ClientError> {
    let mut c = Client::connect(to)?;
    c.send(&Envelope::new("eventbus", "subscribe"))?;
    loop {
        let env = c.recv()?;
        if env.is("eventbus", "message") {
            out.write_all(env.labels.get_str("driver").unwrap_or("-").as_bytes())?;
            out.write_all(b" ")?;
            out.write_all(&env.payload)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
    }
}
