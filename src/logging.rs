//! The log: `RUST_LOG` when set, otherwise info, debug with `-v`, trace with `-vv`; in
//! the human format, or one JSON object a line (`--log-format json`, `[log] format`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

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
///
/// JSON lines carry `timestamp`, `level`, `target`, the event's fields at the top level
/// (`message` among them), `span` (the innermost span's name and fields) and `spans`
/// (every open span, outermost first): what Loki, Elastic and journald index.
pub fn init(verbose: u8, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(verbose))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
