//! The `switchyard` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use std::io::Write;
use switchyard::cli::{Bench, Cli, Command, Topics};
use switchyard::config::{Config, Source};
use tracing::info;

/// mimalloc: the broker allocates and frees small buffers per frame; glibc's malloc was a
/// quarter of its time in the acked-publish benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
            msg_id,
            msg_id_prefix,
            conn,
        }) => client(config.clone(), conn.broker, &conn.tls, |addr| {
            let o = switchyard::client::PubOptions {
                topic,
                message,
                key,
                partition,
                key_separator,
                msg_id,
                msg_id_prefix,
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
        Some(Command::Health { addr, timeout_ms }) => switchyard::health::command(
            addr.as_deref(),
            cli.config.as_deref(),
            std::time::Duration::from_millis(timeout_ms),
        ),
        Some(Command::Completions { shell }) => printed(switchyard::cli::completions(
            shell,
            &mut std::io::stdout().lock(),
        )),
        Some(Command::Man { dir }) => {
            let out = &mut std::io::stdout().lock();
            printed(
                switchyard::cli::man(dir.as_deref(), out).and_then(|written| {
                    written
                        .iter()
                        .try_for_each(|p| writeln!(out, "{}", p.display()))
                }),
            )
        }
        Some(Command::Reload { pid }) => switchyard::reload::command(cli.config, pid),
        Some(Command::Backup { to, topics, conn }) => {
            let cfg = cli.config.clone();
            client(config.clone(), conn.broker, &conn.tls, |target| {
                let settings = switchyard::backup::command::settings(cfg.as_deref())?;
                let out = &mut std::io::stdout().lock();
                switchyard::backup::command::run_backup(target, to, topics, &settings, out)
            })
        }
        Some(Command::Restore {
            from,
            dir,
            force,
            conn,
        }) => restore(config.clone(), from, dir, force, conn),
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
            // The config first: it says how to log. Its errors go to stderr unlogged.
            let (config, source) = match Config::load(cli.config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let format = cli.log_format.unwrap_or(config.log.format);
            switchyard::logging::init(cli.verbose, format);
            log_nofile(raised);
            match serve(config, source) {
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

/// The exit code of a command that prints: a closed pipe (`… | head`) is not a failure.
fn printed(r: std::io::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `restore`: with `--broker`, as new topics into that running broker; else into a
/// stopped broker's data dir.
fn restore(
    config: ClientConfig,
    from: PathBuf,
    dir: Option<PathBuf>,
    force: bool,
    conn: switchyard::client::ConnArgs,
) -> ExitCode {
    use switchyard::backup::command::{run_restore_dir, run_restore_online, settings};
    let cfg = config.0.clone();
    let out = &mut std::io::stdout().lock();
    if conn.broker.is_some() {
        if dir.is_some() || force {
            eprintln!("error: --dir and --force restore into a stopped broker's data dir, not with --broker");
            return ExitCode::from(2);
        }
        return client(config, conn.broker, &conn.tls, |target| {
            run_restore_online(target, &from, &settings(cfg.as_deref())?, out)
        });
    }
    match settings(cfg.as_deref()).and_then(|s| run_restore_dir(from, dir, force, s, out)) {
        Ok(()) => ExitCode::SUCCESS,
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

fn serve(config: Config, source: Source) -> anyhow::Result<()> {
    info!(
        version = switchyard_actors::build_info::line(),
        "switchyard starting"
    );
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
        // Before start-up: a SIGTERM that arrives while the ports open is a graceful
        // stop as soon as they are, not the default action (death without a drain).
        let stop = signal();
        let mut broker = switchyard::start(&config)
            .await
            .context("start-up failed")?;
        if let Some(p) = file {
            broker = broker.with_config_path(p);
        }
        broker.run_until(stop).await;
        Ok(())
    });
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// Resolves on SIGINT or SIGTERM; the handlers are installed when this is called.
fn signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut int), Ok(mut term)) = handlers else {
            tracing::error!("cannot listen for SIGINT/SIGTERM; stop with SIGKILL");
            return std::future::pending().await;
        };
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        info!(signal = name, "signal received");
    }
}
