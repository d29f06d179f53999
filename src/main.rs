//! The `switchyard` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::io::Write;
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
        /// The key of every record
        #[arg(long, conflicts_with = "key_separator")]
        key: Option<String>,
        /// Every record to this partition [default: as the topic routes each record]
        #[arg(long)]
        partition: Option<u32>,
        /// Split each line (and MESSAGE) at the first SEP into key and value; a line
        /// without SEP is a value without a key
        #[arg(long, value_name = "SEP", value_parser = clap::builder::NonEmptyStringValueParser::new())]
        key_separator: Option<String>,
        #[command(flatten)]
        conn: switchyard::client::ConnArgs,
    },
    /// Print a topic's records (`<partition> <offset> <value>` lines unless --format or --json)
    Sub {
        #[command(flatten)]
        options: switchyard::client::SubOptions,
        #[command(flatten)]
        conn: switchyard::client::ConnArgs,
    },
    /// List topics (partitions, offsets, sizes, group lags), create or delete one
    Topics {
        #[command(subcommand)]
        action: Option<Topics>,
        #[command(flatten)]
        conn: switchyard::client::ConnArgs,
    },
    /// Call a feature's RPC method (driver:<name>, svc:<name>, broker, client:<id>) and print the result
    Call {
        feature: String,
        method: String,
        /// The call's payload [default: empty]
        params: Option<String>,
        /// A Go duration for the `timeout` label, e.g. 2s
        #[arg(long)]
        timeout: Option<String>,
        #[command(flatten)]
        conn: switchyard::client::ConnArgs,
    },
    /// Serve a named service: register svc:<name> and run COMMAND once per call (params
    /// on stdin, result from stdout, non-zero exit: an error)
    Serve {
        /// svc:<name>
        feature: String,
        /// The service's group [default: its name]
        #[arg(long)]
        group: Option<String>,
        /// Calls run at once, at most [default: the broker's, 256]
        #[arg(long, value_name = "N")]
        max_inflight: Option<u32>,
        /// This instance's name in `switchyard services` [default: made up by the broker]
        #[arg(long)]
        id: Option<String>,
        /// Exit when the broker closes the connection instead of registering again
        #[arg(long)]
        no_reconnect: bool,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
        #[command(flatten)]
        conn: switchyard::client::ConnArgs,
    },
    /// List the named services: instances, peers, calls in flight, counters, latency
    Services {
        #[command(flatten)]
        conn: switchyard::client::ConnArgs,
    },
    /// Print every event-bus message as `<driver> <payload>` lines
    Events {
        /// Exit when the broker closes the connection instead of subscribing again
        #[arg(long)]
        no_reconnect: bool,
        #[command(flatten)]
        conn: switchyard::client::ConnArgs,
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
    /// Write a local CA, a server certificate for localhost and 127.0.0.1, and a client
    /// certificate into DIR, to try TLS and mutual TLS
    DevCerts {
        dir: PathBuf,
        /// The client certificate's name (its CN: the user it names under mutual TLS)
        #[arg(long, default_value = "dev")]
        client: String,
    },
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
enum Topics {
    /// Each topic's options, its partitions' offsets and sizes, each group's lag (the default)
    List,
    /// Create a topic (`topic create`); what is left out takes the broker's defaults
    Create(switchyard::client::CreateArgs),
    /// Delete a topic, its records and its groups' offsets (`topic delete`, admin)
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Load-generate and check the follower maze against a running broker
    Maze(switchyard::bench::cli::MazeArgs),
    /// Publish to a topic as fast as acks allow
    Pub(switchyard::bench::cli::TopicArgs),
    /// Read a topic from the earliest offset
    Sub(switchyard::bench::cli::TopicArgs),
    /// Consumers subscribed from the latest offset, then producers: end-to-end latency
    Pubsub(switchyard::bench::cli::TopicArgs),
    /// RPC round trips to a feature: one call at a time, then many in flight
    Rpc(switchyard::bench::cli::RpcArgs),
    /// Many idle connections: the broker's memory per connection, a ping among them
    Idle(switchyard::bench::cli::IdleArgs),
    /// Create many topics: time, the broker's fds and RSS, publish latency among them
    Topics(switchyard::bench::cli::ManyArgs),
    /// The rpc, pub and pubsub measurements against a NATS server (to compare)
    Nats(switchyard::bench::cli::NatsArgs),
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
        Some(Command::Bench(Bench::Maze(args))) => {
            switchyard::bench::cli::maze(&args, cli.config.as_deref())
        }
        Some(Command::DevCerts { dir, client }) => {
            match switchyard::devcerts::write(&dir, &client, &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Bench(Bench::Pub(a))) => {
            bench_topics(config.clone(), switchyard::bench::topics::Mode::Pub, a)
        }
        Some(Command::Bench(Bench::Sub(a))) => {
            bench_topics(config.clone(), switchyard::bench::topics::Mode::Sub, a)
        }
        Some(Command::Bench(Bench::Pubsub(a))) => {
            bench_topics(config.clone(), switchyard::bench::topics::Mode::PubSub, a)
        }
        Some(Command::Bench(Bench::Nats(a))) => switchyard::bench::cli::nats(&a),
        Some(Command::Bench(Bench::Rpc(a))) => {
            client(config.clone(), a.broker.clone(), &a.tls, |to| {
                switchyard::bench::rpc::run(&to, &a.options(), &mut std::io::stdout().lock())
            })
        }
        Some(Command::Bench(Bench::Idle(a))) => {
            client(config.clone(), a.broker.clone(), &a.tls, |to| {
                let out = &mut std::io::stdout().lock();
                switchyard::bench::idle::run(&to, &a.options(), out).map(|_| ())
            })
        }
        Some(Command::Bench(Bench::Topics(a))) => {
            client(config.clone(), a.broker.clone(), &a.tls, |to| {
                let out = &mut std::io::stdout().lock();
                switchyard::bench::many::run(&to, &a.options(), out).map(|_| ())
            })
        }
        Some(Command::Pub {
            topic,
            message,
            key,
            partition,
            key_separator,
            conn,
        }) => client(config.clone(), conn.broker, &conn.tls, |addr| {
            let o = switchyard::client::PubOptions {
                topic,
                message,
                key,
                partition,
                key_separator,
            };
            let done = switchyard::client::publish(addr, &o, std::io::stdin().lock())?;
            eprintln!("{done}");
            Ok(())
        }),
        Some(Command::Sub { options, conn }) => {
            client(config.clone(), conn.broker, &conn.tls, |addr| {
                switchyard::client::subscribe(addr, &options, &mut std::io::stdout().lock())
                    .map(|_| ())
            })
        }
        Some(Command::Call {
            feature,
            method,
            params,
            timeout,
            conn,
        }) => client(config.clone(), conn.broker, &conn.tls, |addr| {
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
        Some(Command::Serve {
            feature,
            group,
            max_inflight,
            id,
            no_reconnect,
            command,
            conn,
        }) => client(config.clone(), conn.broker, &conn.tls, |addr| {
            let opts = switchyard::client::ServiceOptions {
                feature,
                group,
                max_inflight,
                id,
            };
            let handler = switchyard::client::command_handler(command);
            switchyard::client::serve(addr, &opts, !no_reconnect, handler, |r| {
                eprintln!(
                    "serving {} as instance {} (group {}, max_inflight {})",
                    r.feature, r.id, r.group, r.max_inflight
                )
            })
        }),
        Some(Command::Services { conn }) => {
            client(config.clone(), conn.broker, &conn.tls, |addr| {
                switchyard::client::services(addr, &mut std::io::stdout().lock())
            })
        }
        Some(Command::Events { no_reconnect, conn }) => {
            client(config.clone(), conn.broker, &conn.tls, |addr| {
                switchyard::client::events(addr, !no_reconnect, &mut std::io::stdout().lock())
            })
        }
        Some(Command::Reload { pid }) => switchyard::reload::command(cli.config, pid),
        Some(Command::Verify { dir, repair }) => {
            switchyard::verify::command(cli.config, dir, repair)
        }
        Some(Command::Topics { action, conn }) => {
            client(config.clone(), conn.broker, &conn.tls, |addr| {
                let out = &mut std::io::stdout().lock();
                match action {
                    None | Some(Topics::List) => switchyard::client::topics(addr, out),
                    Some(Topics::Create(a)) => switchyard::client::create_topic(addr, &a, out),
                    Some(Topics::Delete { name }) => {
                        switchyard::client::delete_topic(addr, &name, out)
                    }
                }
            })
        }
        None => {
            switchyard::logging::init(cli.verbose);
            log_nofile(raised);
            match serve(cli.config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Once, on stderr, where the log goes too: a log line as well would
                    // say it twice.
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

/// `bench pub | sub | pubsub`: the client's connection, then the bench.
fn bench_topics(
    config: ClientConfig,
    mode: switchyard::bench::topics::Mode,
    a: switchyard::bench::cli::TopicArgs,
) -> ExitCode {
    client(config, a.broker.clone(), &a.tls, |to| {
        let o = switchyard::bench::cli::topic_options(mode, to, &a)?;
        switchyard::bench::topics::run(&o, &mut std::io::stdout().lock())
            .map_err(switchyard::client::ClientError::Broker)
    })
}

/// Runs a client command against `--broker`, or the config's `broker.bind`, over TLS
/// when `tls` says so.
fn client(
    (config, login): ClientConfig,
    broker: Option<switchyard::client::BrokerAddr>,
    tls: &switchyard::client::TlsOptions,
    run: impl FnOnce(switchyard::client::Target) -> Result<(), switchyard::client::ClientError>,
) -> ExitCode {
    let addr = match broker {
        Some(a) => a,
        None => match Config::load(config.as_deref()) {
            Ok((c, _)) => match c.broker.bind.to_string().parse() {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: broker.bind {e}");
                    return ExitCode::FAILURE;
                }
            },
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let connector = match switchyard::client::Connector::new(tls) {
        Ok(c) => c.for_broker(&addr),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(switchyard::client::Target {
        addr,
        connector,
        login,
    }) {
        Ok(()) => ExitCode::SUCCESS,
        // `sub … | head`: the reader has all it wanted.
        Err(switchyard::client::ClientError::Output(e))
            if e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
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
