//! The log: `RUST_LOG` when set, otherwise info, debug with `-v`, trace with `-vv`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter for `verbose` (`-v` count) when `RUST_LOG` is unset.
pub fn filter(verbose: u8) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(match verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }),
    }
}

/// Logs to stderr.
pub fn init(verbose: u8) {
    tracing_subscriber::fmt()
        .with_env_filter(filter(verbose))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
