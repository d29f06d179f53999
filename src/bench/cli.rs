//! The command-line options of `switchyard bench`, and turning them into each
//! bench's options (kept here so `main.rs` stays the command table).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use super::topics::{Mode, Options};
use crate::client::{BrokerAddr, ClientError, Target};

#[derive(Debug, Clone, clap::Args)]
pub struct TopicArgs {
    /// The broker port, HOST:PORT [default: broker.bind of the config]
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: Option<BrokerAddr>,
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Bytes per message (at least 8)
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Messages in all
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Messages per publish envelope
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Publishes in flight per producer
    #[arg(long, default_value_t = 16)]
    pub inflight: u64,
    /// Consumers join this consumer group: each record is read once by the group, and the
    /// bench checks every partition's offsets came once, with no gap
    #[arg(long)]
    pub group: Option<String>,
    /// Partitions of the topic when the bench creates it [default: the broker's]
    #[arg(long)]
    pub partitions: Option<u32>,
    /// With --group: one more member joins when half the records are delivered
    #[arg(long, requires = "group")]
    pub rebalance: bool,
    /// Publish without `id` (no acks, as fast as the socket takes them); only the last
    /// publish asks for an ack, to learn when the broker has taken everything
    #[arg(long)]
    pub no_ack: bool,
    /// Every publish carries a msg_id of its own (`<random>-<n>`, unique per producer):
    /// measures the cost of the broker's msg_id index (idempotent publish)
    #[arg(long)]
    pub msg_id: bool,
    /// Messages per second across producers [default: as fast as acks allow]
    #[arg(long)]
    pub rate: Option<u64>,
    /// Records a consumer may have outstanding [default: batch x inflight, 10000 to 1000000]
    #[arg(long)]
    pub credit: Option<u64>,
    /// Records per second each consumer reads: a slow subscriber [default: no pacing]
    #[arg(long)]
    pub consume_rate: Option<u64>,
    /// Records per `topic deliver` the consumers ask for (the subscribe `batch` label)
    #[arg(long, default_value_t = 1)]
    pub deliver_batch: u64,
    /// The fsync option of the topic when the bench creates it [default: the broker's]
    #[arg(long, value_parser = ["always", "interval", "never"])]
    pub fsync: Option<String>,
    /// The broker's pid, to report its resident memory over the run
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub tls: crate::client::TlsOptions,
}

/// `bench rpc`: calls to one feature's method.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcArgs {
    /// The broker port, HOST:PORT [default: broker.bind of the config]
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: Option<BrokerAddr>,
    /// The feature called: `broker`, `driver:<name>`, `svc:<name>`, ...
    #[arg(long, default_value = "broker")]
    pub feature: String,
    #[arg(long, default_value = "ping")]
    pub method: String,
    /// Bytes of params per call
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Calls per run
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Calls outstanding in the second run (0 or 1: one run only)
    #[arg(long, default_value_t = 64)]
    pub inflight: u64,
    /// Calls made before each run and not measured
    #[arg(long, default_value_t = 1000)]
    pub warmup: u64,
    /// The bench answers its own calls: N registered instances of a `svc:<name>`
    /// feature, or (N = 1) a remote driver for `driver:<name>`; each echoes the params
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub serve: usize,
    #[command(flatten)]
    pub tls: crate::client::TlsOptions,
}

impl RpcArgs {
    pub fn options(&self) -> super::rpc::Options {
        super::rpc::Options {
            feature: self.feature.clone(),
            method: self.method.clone(),
            size: self.size,
            count: self.count.max(1),
            inflight: self.inflight,
            warmup: self.warmup,
            serve: self.serve,
        }
    }
}

/// `bench idle`: many idle connections, the broker's memory per connection, and a
/// ping's round trip among them.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// The broker port, HOST:PORT [default: broker.bind of the config]
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: Option<BrokerAddr>,
    /// Idle connections to open (the descriptor limit is raised to the hard limit; the
    /// broker's `max_connections` and `max_connections_per_ip` must admit them)
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// `broker ping` round trips measured alone, then among the idle connections
    #[arg(long, default_value_t = 2000)]
    pub pings: u64,
    /// Milliseconds the idle connections stay silent before the broker's memory is read
    #[arg(long, default_value_t = 3000)]
    pub settle_ms: u64,
    /// The broker's pid, to read its resident memory (no memory figure without it)
    #[arg(long)]
    pub broker_pid: Option<u32>,
    #[command(flatten)]
    pub tls: crate::client::TlsOptions,
}

impl IdleArgs {
    pub fn options(&self) -> super::idle::Options {
        super::idle::Options {
            connections: self.connections,
            pings: self.pings,
            broker_pid: self.broker_pid,
            settle: std::time::Duration::from_millis(self.settle_ms),
        }
    }
}

/// `bench topics`: what many topics cost the broker.
#[derive(Debug, Clone, clap::Args)]
pub struct ManyArgs {
    /// The broker port, HOST:PORT [default: broker.bind of the config]
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: Option<BrokerAddr>,
    /// Topics created
    #[arg(long, default_value_t = 5000)]
    pub topics: u64,
    /// Partitions of each topic
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Topic names: the prefix and a number from 0
    #[arg(long, default_value = "many-")]
    pub prefix: String,
    /// Acked single-record publishes to one topic, one at a time, measured
    #[arg(long, default_value_t = 5000)]
    pub count: u64,
    /// Publishes made before the measured ones
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
    /// Bytes per record
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Requests unanswered at once while creating, filling and deleting
    #[arg(long, default_value_t = 256)]
    pub inflight: u64,
    /// The broker's pid, for its fds and RSS [default: the process listening on the
    /// broker's port, when that is on loopback]
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Delete the topics at the end (an admin request)
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub tls: crate::client::TlsOptions,
}

impl ManyArgs {
    pub fn options(&self) -> super::many::Options {
        super::many::Options {
            topics: self.topics.max(1),
            partitions: self.partitions.max(1),
            prefix: self.prefix.clone(),
            count: self.count,
            warmup: self.warmup,
            size: self.size,
            inflight: self.inflight.max(1),
            broker_pid: self.broker_pid,
            delete: self.delete,
        }
    }
}

/// `bench nats`: the `rpc`, `pub` and `pubsub` measurements against a NATS server.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["rpc", "publish", "fanout"])))]
pub struct NatsArgs {
    /// The NATS server, HOST:PORT
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:4222")]
    pub server: BrokerAddr,
    /// Request/reply through a responder, then the server's PING: one call at a time,
    /// then --inflight outstanding
    #[arg(long)]
    pub rpc: bool,
    /// Single-record publishes without replies, as fast as the server takes them
    #[arg(long = "pub")]
    pub publish: bool,
    /// One producer, --subscribers subscribers each reading every record
    #[arg(long)]
    pub fanout: bool,
    #[arg(long, default_value = "bench")]
    pub subject: String,
    /// Bytes per payload [default: 16 with --rpc, else 128]
    #[arg(long)]
    pub size: Option<usize>,
    /// Calls per run with --rpc, records in all otherwise [default: 100000 with --rpc,
    /// else 1000000]
    #[arg(long)]
    pub count: Option<u64>,
    /// --rpc: calls outstanding in the second run (0 or 1: one run only)
    #[arg(long, default_value_t = 64)]
    pub inflight: u64,
    /// --rpc: calls made before each run and not measured
    #[arg(long, default_value_t = 1000)]
    pub warmup: u64,
    /// --fanout: subscribers on the subject
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// Milliseconds a reader waits for its next message before it gives up
    #[arg(long, default_value_t = 5000)]
    pub idle_ms: u64,
}

/// `bench nats`: runs and prints the report.
pub fn nats(a: &NatsArgs) -> ExitCode {
    use super::nats::Mode;
    let mode = match (a.rpc, a.publish) {
        (true, _) => Mode::Rpc,
        (_, true) => Mode::Pub,
        _ => Mode::Fanout,
    };
    let server = match a.server.resolve().map(|addrs| addrs.first().copied()) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("error: --server {}: no address", a.server);
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: --server {}: {e}", a.server);
            return ExitCode::from(2);
        }
    };
    let rpc = mode == Mode::Rpc;
    let o = super::nats::Options {
        mode,
        server,
        subject: a.subject.clone(),
        size: a.size.unwrap_or(if rpc { 16 } else { 128 }),
        count: a
            .count
            .unwrap_or(if rpc { 100_000 } else { 1_000_000 })
            .max(1),
        inflight: a.inflight,
        warmup: a.warmup,
        subscribers: a.subscribers.max(1),
        idle: std::time::Duration::from_millis(a.idle_ms.max(1)),
    };
    match super::nats::run(&o, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Options take the official harness's environment variables too.
#[derive(Debug, clap::Args)]
pub struct MazeArgs {
    #[arg(long, env = "totalEvents", default_value_t = 10_000_000)]
    pub total_events: u64,
    /// Connected user clients
    #[arg(long, env = "concurrencyLevel", default_value_t = 100)]
    pub concurrency_level: usize,
    /// User ids in events [default: 10 x concurrency-level]
    #[arg(long, env = "numberOfUsers")]
    pub number_of_users: Option<u32>,
    /// Largest batch; each batch is shuffled before it is sent
    #[arg(long, env = "maxEventSourceBatchSize", default_value_t = 100)]
    pub max_event_source_batch_size: u32,
    #[arg(long, env = "randomSeed", default_value_t = 666)]
    pub random_seed: u64,
    /// Milliseconds a client waits for its next expected notification
    #[arg(long, env = "timeout", default_value_t = 20_000)]
    pub timeout: u64,
    /// [default: the port of maze.event_bind of the config]
    #[arg(long, env = "eventListenerPort")]
    pub event_listener_port: Option<u16>,
    /// [default: the port of maze.client_bind of the config]
    #[arg(long, env = "clientListenerPort")]
    pub client_listener_port: Option<u16>,
    /// The broker's host [default: the address of the config's maze binds; 127.0.0.1
    /// when they bind every address]
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// The broker's pid, to report its peak RSS
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

/// The options of `bench pub | sub | pubsub` against `to` (a host name resolves to the
/// first of its addresses that accepts a connection).
pub fn topic_options(mode: Mode, to: Target, a: &TopicArgs) -> Result<Options, ClientError> {
    let (_, broker) = to.addr.connect_tcp()?;
    Ok(Options {
        mode,
        broker,
        connector: to.connector,
        login: to.login,
        topic: a.topic.clone(),
        size: a.size.max(8),
        count: a.count,
        batch: a.batch.max(1),
        producers: a.producers.max(1),
        consumers: a.consumers.max(1),
        inflight: a.inflight.max(1),
        no_ack: a.no_ack,
        msg_id: a.msg_id,
        group: a.group.clone(),
        partitions: a.partitions,
        rebalance: a.rebalance,
        rate: a.rate,
        credit: a.credit,
        consume_rate: a.consume_rate,
        deliver_batch: a.deliver_batch.max(1),
        fsync: a.fsync.clone(),
        broker_pid: a.broker_pid,
        progress: !a.quiet,
    })
}

/// The maze ports to load: the flags (or the harness's variables) where given, the
/// `[maze]` binds of the config (`-c`, or the default config) for the rest.
fn maze_addrs(a: &MazeArgs, config: Option<&Path>) -> Result<(SocketAddr, SocketAddr), String> {
    let binds = match (a.event_listener_port, a.client_listener_port, a.host) {
        (Some(e), Some(c), Some(h)) => return Ok(((h, e).into(), (h, c).into())),
        _ => {
            let (c, _) = crate::config::Config::load(config).map_err(|e| e.to_string())?;
            let m = c.maze.unwrap_or_default();
            let addr = |what: &str, bind: String| -> Result<SocketAddr, String> {
                let b: BrokerAddr = bind.parse().map_err(|e| format!("maze.{what} {e}"))?;
                let a = b.resolve().map_err(|e| format!("maze.{what}: {e}"))?;
                a.first()
                    .copied()
                    .ok_or_else(|| format!("maze.{what}: no address"))
            };
            (
                addr("event_bind", m.event_bind.to_string())?,
                addr("client_bind", m.client_bind.to_string())?,
            )
        }
    };
    let at = |bind: SocketAddr, port: Option<u16>| {
        let ip = match a.host {
            Some(h) => h,
            // A broker bound to every address is reached on loopback.
            None if bind.ip().is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            None => bind.ip(),
        };
        SocketAddr::new(ip, port.unwrap_or(bind.port()))
    };
    Ok((
        at(binds.0, a.event_listener_port),
        at(binds.1, a.client_listener_port),
    ))
}

/// `bench maze`: runs and prints the report; fails when the check did not pass.
pub fn maze(a: &MazeArgs, config: Option<&Path>) -> ExitCode {
    let (event_addr, client_addr) = match maze_addrs(a, config) {
        Ok(addrs) => addrs,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = super::maze::Options {
        total_events: a.total_events,
        concurrency: a.concurrency_level,
        users: a
            .number_of_users
            .unwrap_or((a.concurrency_level as u32).saturating_mul(10)),
        max_batch: a.max_event_source_batch_size,
        seed: a.random_seed,
        timeout: std::time::Duration::from_millis(a.timeout),
        event_addr,
        client_addr,
        broker_pid: a.broker_pid,
        progress: !a.quiet,
    };
    match super::maze::run(&opts) {
        Ok(report) => {
            print!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
