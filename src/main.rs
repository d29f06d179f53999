//! The `switchyard` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchyard::config::{Config, Source};
use tracing::info;

#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about = "An actor-model message broker")]
struct Cli {
    /// The config file [default: ./config.toml, or the shipped copy if that is missing]
    #[arg(short, long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// More log output when RUST_LOG is unset: -v debug, -vv trace
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { path }) => check_config(path.or(cli.config)),
        None => {
            switchyard::logging::init(cli.verbose);
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
    if source == Source::Embedded {
        info!("no ./config.toml, using the shipped config");
    } else {
        info!(config = %source, "config loaded");
    }
    actix_rt::System::new().block_on(async move {
        let broker = switchyard::start(&config)
            .await
            .context("start-up failed")?;
        broker.run_until(signal()).await;
        Ok(())
    })
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
