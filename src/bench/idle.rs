//! `switchyard bench idle`: what idle connections cost the broker. Opens N connections
//! that each send one `command ping` and read its answer, then stay open and silent;
//! reports the broker's resident memory per connection, and the `broker ping` round trip
//! on one more connection, before the idle ones opened and among them.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::rpc::RunReport;
use super::rss::RssSampler;
use crate::client::tls::Stream;
use crate::client::{ClientError, Target};

/// Descriptors kept for the bench's own use (the measuring connection, stdio, TLS).
const SPARE_FDS: u64 = 32;

const PING: &[u8] = b"command ping 0 0\n";
const ALIVE: &[u8] = b"state alive 0 0\n";

#[derive(Debug, Clone)]
pub struct Options {
    /// Idle connections to open.
    pub connections: usize,
    /// `broker ping` calls measured in each latency run.
    pub pings: u64,
    /// The broker's pid, to read its resident memory; without it no memory figure.
    pub broker_pid: Option<u32>,
    /// How long the idle connections stay silent before the broker's memory is read
    /// (long enough for the broker to release what quiet connections hold).
    pub settle: Duration,
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// Idle connections open while measuring.
    pub connections: usize,
    /// Seconds to open them (connect, ping, answer, one after the other).
    pub open_secs: f64,
    /// The broker's resident memory (KiB) before they opened, after they settled,
    /// and after they closed; `None` without a pid.
    pub rss_before_kib: Option<u64>,
    pub rss_idle_kib: Option<u64>,
    pub rss_closed_kib: Option<u64>,
    /// `broker ping` round trips with no idle connection open, then among them.
    pub alone: RunReport,
    pub among: RunReport,
}

impl Report {
    /// Bytes of broker memory each idle connection holds.
    pub fn bytes_per_connection(&self) -> Option<f64> {
        let (before, idle) = (self.rss_before_kib?, self.rss_idle_kib?);
        let n = self.connections.max(1) as f64;
        Some((idle as f64 - before as f64) * 1024.0 / n)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb =
            |k: Option<u64>| k.map_or("?".to_string(), |k| format!("{:.1} MB", k as f64 / 1024.0));
        writeln!(
            f,
            "opened {} idle connections in {:.2} s",
            self.connections, self.open_secs
        )?;
        writeln!(
            f,
            "broker rss: before {}  idle {}  closed {}",
            mb(self.rss_before_kib),
            mb(self.rss_idle_kib),
            mb(self.rss_closed_kib)
        )?;
        match self.bytes_per_connection() {
            Some(b) => writeln!(f, "rss per idle connection: {:.1} KB", b / 1000.0)?,
            None => writeln!(f, "rss per idle connection: unknown (give --broker-pid)")?,
        }
        let line = |r: &RunReport| {
            format!(
                "p50 {} us  p99 {} us  max {} us ({} calls)",
                r.latency.quantile(0.5),
                r.latency.quantile(0.99),
                r.latency.max(),
                r.calls
            )
        };
        writeln!(f, "broker ping alone:     {}", line(&self.alone))?;
        write!(
            f,
            "broker ping among {}: {}",
            self.connections,
            line(&self.among)
        )
    }
}

/// Raises the soft descriptor limit to the hard one; returns how many connections it
/// leaves room for.
fn room_for(wanted: usize) -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024);
    wanted.min(limit.saturating_sub(SPARE_FDS) as usize)
}

/// One idle connection: logged in if asked, one ping answered.
fn open_one(to: &Target, addr: SocketAddr) -> Result<Stream, ClientError> {
    let mut s = to.connector.connect(&addr.into())?;
    if let Some(l) = &to.login {
        crate::login::send_login(&mut s, l).map_err(ClientError::Login)?;
        crate::login::read_login_answer(&mut s).map_err(ClientError::Login)?;
    }
    s.write_all(PING)?;
    s.flush()?;
    let mut got = [0u8; ALIVE.len()];
    s.read_exact(&mut got).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ClientError::Closed,
        _ => ClientError::Io(e),
    })?;
    if got != ALIVE {
        return Err(ClientError::Frame(format!(
            "expected `state alive` to a ping, got {:?} (refused? see broker.max_connections and max_connections_per_ip)",
            String::from_utf8_lossy(&got)
        )));
    }
    Ok(s)
}

fn pings(to: &Target, o: &Options) -> Result<RunReport, ClientError> {
    let r = super::rpc::Options {
        feature: "broker".into(),
        method: "ping".into(),
        size: 0,
        count: o.pings.max(1),
        inflight: 1,
        warmup: (o.pings / 10).max(1),
        serve: 0,
    };
    super::rpc::one_run(to, &r)
}

/// Runs the bench and prints what it measured as it goes (`out`), then the report.
pub fn run(to: &Target, o: &Options, out: &mut impl Write) -> Result<Report, ClientError> {
    let n = room_for(o.connections);
    let say = |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(ClientError::Output);
    if n < o.connections {
        say(
            out,
            format!(
                "the descriptor limit leaves room for {n} of {} connections",
                o.connections
            ),
        )?;
    }
    let (_, addr) = to.addr.connect_tcp()?;
    let alone = pings(to, o)?;
    let mut rss = o.broker_pid.map(RssSampler::new);
    let rss_before_kib = rss.as_ref().and_then(|r| r.start);
    let start = Instant::now();
    let mut idle = Vec::with_capacity(n);
    for i in 0..n {
        let s = open_one(to, addr)
            .map_err(|e| ClientError::Broker(format!("idle connection {} of {n}: {e}", i + 1)))?;
        idle.push(s);
    }
    let open_secs = start.elapsed().as_secs_f64();
    say(
        out,
        format!(
            "{n} idle connections open, waiting {} ms",
            o.settle.as_millis()
        ),
    )?;
    std::thread::sleep(o.settle);
    let rss_idle_kib = rss.as_mut().and_then(|r| {
        r.sample();
        r.now
    });
    let among = pings(to, o)?;
    // Each is still there: a ping on every one.
    for (i, s) in idle.iter_mut().enumerate() {
        let mut got = [0u8; ALIVE.len()];
        let answered = s
            .write_all(PING)
            .and_then(|()| s.flush())
            .and_then(|()| s.read_exact(&mut got));
        match answered {
            Ok(()) if got == ALIVE => {}
            Ok(()) => {
                return Err(ClientError::Frame(format!(
                    "idle connection {} of {n}: {:?} to a ping",
                    i + 1,
                    String::from_utf8_lossy(&got)
                )))
            }
            Err(e) => {
                return Err(ClientError::Broker(format!(
                    "idle connection {} of {n} lost: {e}",
                    i + 1
                )))
            }
        }
    }
    drop(idle);
    std::thread::sleep(o.settle);
    let rss_closed_kib = rss.as_mut().and_then(|r| {
        r.sample();
        r.now
    });
    let report = Report {
        connections: n,
        open_secs,
        rss_before_kib,
        rss_idle_kib,
        rss_closed_kib,
        alone,
        among,
    };
    writeln!(out, "{report}").map_err(ClientError::Output)?;
    Ok(report)
}
