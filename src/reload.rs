//! `switchyard reload`: SIGHUP to a running broker, found by `--pid` or its pid file.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

/// `switchyard reload`: SIGHUP to the broker whose pid is given or in `broker.pid_file`.
pub fn command(config: Option<PathBuf>, pid: Option<i32>) -> ExitCode {
    let pid = match pid {
        Some(p) => p,
        None => {
            let file = match Config::load(config.as_deref()) {
                Ok((c, _)) => c.broker.pid_file,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let Some(file) = file else {
                eprintln!("error: broker.pid_file is not set in the config; pass --pid");
                return ExitCode::FAILURE;
            };
            match std::fs::read_to_string(&file).map(|t| t.trim().parse::<i32>()) {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    eprintln!("error: {} does not hold a pid: {e}", file.display());
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!(
                        "error: cannot read {} (is the broker running?): {e}",
                        file.display()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    ) {
        Ok(()) => {
            eprintln!("sent SIGHUP to {pid}: the broker re-reads its config (see its log)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot signal pid {pid}: {e}");
            ExitCode::FAILURE
        }
    }
}
