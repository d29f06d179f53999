//! The command-line options of `switchyard bench`, and turning them into each
//! bench's options (kept here so `main.rs` stays the command table).

use std::process::ExitCode;

use super::topics::{Mode, Options};
use crate::client::Target;

#[derive(Debug, Clone, clap::Args)]
pub struct TopicArgs {
    /// The broker port [default: broker.bind of the config]
    #[arg(long)]
    pub broker: Option<std::net::SocketAddr>,
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
    /// Publish without `id` (no acks, as fast as the socket takes them); only the last
    /// publish asks for an ack, to learn when the broker has taken everything
    #[arg(long)]
    pub no_ack: bool,
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
    #[arg(long, env = "eventListenerPort", default_value_t = 9090)]
    pub event_listener_port: u16,
    #[arg(long, env = "clientListenerPort", default_value_t = 9099)]
    pub client_listener_port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// The broker's pid, to report its peak RSS
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

/// The options of `bench pub | sub | pubsub` against `to`.
pub fn topic_options(mode: Mode, to: Target, a: &TopicArgs) -> Options {
    Options {
        mode,
        broker: to.addr,
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
        rate: a.rate,
        credit: a.credit,
        consume_rate: a.consume_rate,
        deliver_batch: a.deliver_batch.max(1),
        fsync: a.fsync.clone(),
        broker_pid: a.broker_pid,
        progress: !a.quiet,
    }
}

/// `bench maze`: runs and prints the report; fails when the check did not pass.
pub fn maze(a: &MazeArgs) -> ExitCode {
    let opts = super::maze::Options {
        total_events: a.total_events,
        concurrency: a.concurrency_level,
        users: a
            .number_of_users
            .unwrap_or((a.concurrency_level as u32).saturating_mul(10)),
        max_batch: a.max_event_source_batch_size,
        seed: a.random_seed,
        timeout: std::time::Duration::from_millis(a.timeout),
        event_addr: (a.host, a.event_listener_port).into(),
        client_addr: (a.host, a.client_listener_port).into(),
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
