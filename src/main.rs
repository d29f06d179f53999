//! The `switchyard` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::io::Write;
use switchyard::client::Endpoint;
use switchyard::config::{Config, Source};
use tracing::info;

/// mimalloc: the broker allocates and frees small buffers per frame; glibc's malloc was a
/// quarter of its time in the acked-publish benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about = "An actor-model message broker")]
struct Cli {
    /// The config file [default: ./config.toml, or the shipped copy if that is missing]
    #[arg(short, long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// More log output when RUST_LOG is unset: -v debug, -vv trace
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(flatten)]
    login: switchyard::login::LoginArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a config file and print the effective config (defaults filled in)
    CheckConfig {
        /// The file to check [default: --config, or ./config.toml, or the shipped copy]
        path: Option<PathBuf>,
    },
    /// Publish MESSAGE, or every line of stdin, to a topic and wait for the acks
    Pub {
        topic: String,
        message: Option<String>,
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        partition: Option<u32>,
        /// The broker port [default: broker.bind of the config]
        #[arg(long)]
        broker: Option<std::net::SocketAddr>,
    },
    /// Print a topic's records as `<partition> <offset> <value>` lines
    Sub {
        #[command(flatten)]
        options: switchyard::client::SubOptions,
        #[arg(long)]
        broker: Option<std::net::SocketAddr>,
    },
    /// List topics: partitions, offsets, sizes, group lags
    Topics {
        #[arg(long)]
        broker: Option<std::net::SocketAddr>,
    },
    /// Call a feature's RPC method (driver:<name>, broker, client:<id>) and print the result
    Call {
        feature: String,
        method: String,
        /// The call's payload [default: empty]
        params: Option<String>,
        /// A Go duration for the `timeout` label, e.g. 2s
        #[arg(long)]
        timeout: Option<String>,
        #[arg(long)]
        broker: Option<std::net::SocketAddr>,
    },
    /// Print every event-bus message as `<driver> <payload>` lines
    Events {
        #[arg(long)]
        broker: Option<std::net::SocketAddr>,
    },
    /// Read a password or token from stdin (no echo on a terminal) and print its argon2id hash
    Passwd,
    /// Make the running broker re-read its config (sends SIGHUP to broker.pid_file's pid)
    Reload {
        /// The broker's pid [default: read from broker.pid_file]
        #[arg(long)]
        pid: Option<i32>,
    },
    /// Benchmarks that print figures
    #[command(subcommand)]
    Bench(Bench),
    /// Check a stopped broker's data dir offline: every CRC, offset and index
    Verify {
        /// The data dir [default: storage.dir of the config]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rebuild indexes and move bad byte ranges to <partition>/quarantine/
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Load-generate and check the follower maze against a running broker
    Maze(MazeArgs),
    /// Publish to a topic as fast as acks allow
    Pub(TopicArgs),
    /// Read a topic from the earliest offset
    Sub(TopicArgs),
    /// Consumers subscribed from the latest offset, then producers: end-to-end latency
    Pubsub(TopicArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct TopicArgs {
    /// The broker port [default: broker.bind of the config]
    #[arg(long)]
    broker: Option<std::net::SocketAddr>,
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Bytes per message (at least 8)
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Messages in all
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Messages per publish envelope
    #[arg(long, default_value_t = 1000)]
    batch: u64,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Publishes in flight per producer
    #[arg(long, default_value_t = 16)]
    inflight: u64,
    /// Messages per second across producers [default: as fast as acks allow]
    #[arg(long)]
    rate: Option<u64>,
    /// Records a consumer may have outstanding [default: batch x inflight, 10000 to 1000000]
    #[arg(long)]
    credit: Option<u64>,
    /// Records per second each consumer reads: a slow subscriber [default: no pacing]
    #[arg(long)]
    consume_rate: Option<u64>,
    /// Records per `topic deliver` the consumers ask for (the subscribe `batch` label)
    #[arg(long, default_value_t = 1)]
    deliver_batch: u64,
    /// The fsync option of the topic when the bench creates it [default: the broker's]
    #[arg(long, value_parser = ["always", "interval", "never"])]
    fsync: Option<String>,
    /// The broker's pid, to report its resident memory over the run
    #[arg(long)]
    broker_pid: Option<u32>,
    /// No progress bar
    #[arg(long)]
    quiet: bool,
}

/// Options take the official harness's environment variables too.
#[derive(Debug, clap::Args)]
struct MazeArgs {
    #[arg(long, env = "totalEvents", default_value_t = 10_000_000)]
    total_events: u64,
    /// Connected user clients
    #[arg(long, env = "concurrencyLevel", default_value_t = 100)]
    concurrency_level: usize,
    /// User ids in events [default: 10 x concurrency-level]
    #[arg(long, env = "numberOfUsers")]
    number_of_users: Option<u32>,
    /// Largest batch; each batch is shuffled before it is sent
    #[arg(long, env = "maxEventSourceBatchSize", default_value_t = 100)]
    max_event_source_batch_size: u32,
    #[arg(long, env = "randomSeed", default_value_t = 666)]
    random_seed: u64,
    /// Milliseconds a client waits for its next expected notification
    #[arg(long, env = "timeout", default_value_t = 20_000)]
    timeout: u64,
    #[arg(long, env = "eventListenerPort", default_value_t = 9090)]
    event_listener_port: u16,
    #[arg(long, env = "clientListenerPort", default_value_t = 9099)]
    client_listener_port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// The broker's pid, to report its peak RSS
    #[arg(long)]
    broker_pid: Option<u32>,
    /// No progress bar
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A broker with thousands of clients needs more descriptors than the usual soft limit.
    let raised = rlimit::increase_nofile_limit(u64::MAX);
    let login = match cli.login.login() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = (cli.config.clone(), login);
    match cli.command {
        Some(Command::Passwd) => switchyard::passwd::command(),
        Some(Command::CheckConfig { path }) => check_config(path.or(cli.config)),
        Some(Command::Bench(Bench::Maze(args))) => bench_maze(&args),
        Some(Command::Bench(Bench::Pub(a))) => {
            bench_topics(config.clone(), switchyard::bench::topics::Mode::Pub, a)
        }
        Some(Command::Bench(Bench::Sub(a))) => {
            bench_topics(config.clone(), switchyard::bench::topics::Mode::Sub, a)
        }
        Some(Command::Bench(Bench::Pubsub(a))) => {
            bench_topics(config.clone(), switchyard::bench::topics::Mode::PubSub, a)
        }
        Some(Command::Pub {
            topic,
            message,
            key,
            partition,
            broker,
        }) => client(config.clone(), broker, |addr| {
            let n = switchyard::client::publish(
                addr,
                &topic,
                key.as_deref(),
                partition,
                message.as_deref(),
            )?;
            eprintln!("published {n} records to {topic}");
            Ok(())
        }),
        Some(Command::Sub { options, broker }) => client(config.clone(), broker, |addr| {
            switchyard::client::subscribe(addr, &options, &mut std::io::stdout().lock()).map(|_| ())
        }),
        Some(Command::Call {
            feature,
            method,
            params,
            timeout,
            broker,
        }) => client(config.clone(), broker, |addr| {
            let p = params.unwrap_or_default();
            let out = switchyard::client::call(
                addr,
                &feature,
                &method,
                p.as_bytes(),
                timeout.as_deref(),
            )?;
            let mut o = std::io::stdout().lock();
            o.write_all(&out)?;
            o.write_all(b"\n")?;
            Ok(())
        }),
        Some(Command::Events { broker }) => client(config.clone(), broker, |addr| {
            switchyard::client::events(addr, &mut std::io::stdout().lock())
        }),
        Some(Command::Reload { pid }) => switchyard::reload::command(cli.config, pid),
        Some(Command::Verify { dir, repair }) => {
            switchyard::verify::command(cli.config, dir, repair)
        }
        Some(Command::Topics { broker }) => client(config.clone(), broker, |addr| {
            switchyard::client::topics(addr, &mut std::io::stdout().lock())
        }),
        None => {
            switchyard::logging::init(cli.verbose);
            log_nofile(raised);
            match serve(cli.config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Says how many file descriptors the broker may open: each connection, partition
/// segment and driver pipe takes some, and past the limit accepts fail.
fn log_nofile(raised: std::io::Result<u64>) {
    let limits = rlimit::getrlimit(rlimit::Resource::NOFILE);
    match (raised, limits) {
        (Ok(_), Ok((soft, hard))) => info!(soft, hard, "file descriptor limit (RLIMIT_NOFILE)"),
        (Err(e), Ok((soft, hard))) => {
            tracing::warn!(soft, hard, error = %e, "file descriptor limit (RLIMIT_NOFILE) not raised")
        }
        (_, Err(e)) => tracing::warn!(error = %e, "cannot read the file descriptor limit"),
    }
}

/// The config file and the login flags a client command uses.
type ClientConfig = (Option<PathBuf>, Option<switchyard::client::Login>);

/// Runs a client command against `--broker`, or the config's `broker.bind`.
fn client(
    (config, login): ClientConfig,
    broker: Option<std::net::SocketAddr>,
    run: impl FnOnce(Endpoint) -> Result<(), switchyard::client::ClientError>,
) -> ExitCode {
    let addr = match broker {
        Some(a) => a,
        None => match Config::load(config.as_deref()) {
            Ok((c, _)) => c.broker.bind,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match run(Endpoint { addr, login }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench_topics(
    config: ClientConfig,
    mode: switchyard::bench::topics::Mode,
    a: TopicArgs,
) -> ExitCode {
    client(config, a.broker, |ep| {
        let o = switchyard::bench::topics::Options {
            mode,
            broker: ep.addr,
            login: ep.login,
            topic: a.topic.clone(),
            size: a.size.max(8),
            count: a.count,
            batch: a.batch.max(1),
            producers: a.producers.max(1),
            consumers: a.consumers.max(1),
            inflight: a.inflight.max(1),
            rate: a.rate,
            credit: a.credit,
            consume_rate: a.consume_rate,
            deliver_batch: a.deliver_batch.max(1),
            fsync: a.fsync.clone(),
            broker_pid: a.broker_pid,
            progress: !a.quiet,
        };
        switchyard::bench::topics::run(&o, &mut std::io::stdout().lock())
            .map_err(switchyard::client::ClientError::Broker)
    })
}

fn bench_maze(a: &MazeArgs) -> ExitCode {
    let opts = switchyard::bench::maze::Options {
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
    match switchyard::bench::maze::run(&opts) {
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

fn check_config(path: Option<PathBuf>) -> ExitCode {
    match Config::load(path.as_deref()) {
        Ok((config, source)) => {
            println!("# effective config from {source}\n{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let (config, source) = Config::load(path.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let file = match &source {
        Source::Embedded => {
            info!("no ./config.toml, using the shipped config (SIGHUP has nothing to re-read)");
            None
        }
        Source::File(p) => {
            info!(config = %source, "config loaded");
            Some(p.clone())
        }
    };
    let pid_file = config.broker.pid_file.clone();
    if let Some(p) = &pid_file {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write broker.pid_file {}", p.display()))?;
    }
    // This process has no children but its drivers: any zombie child that is not a
    // driver process tokio waits for is a driver's orphan, and ours to reap.
    switchyard_actors::drivers::reaper::reap_unknown_zombies(true);
    let result = actix_rt::System::new().block_on(async move {
        let mut broker = switchyard::start(&config)
            .await
            .context("start-up failed")?;
        if let Some(p) = file {
            broker = broker.with_config_path(p);
        }
        broker.run_until(signal()).await;
        Ok(())
    });
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// Resolves on SIGINT or SIGTERM.
async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot listen for SIGINT/SIGTERM; stop with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    info!(signal = name, "signal received");
}
