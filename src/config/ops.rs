//! The sections that shape how the broker is operated rather than what it does:
//! `[debug]`, `[shutdown]` and `[log]`.

use serde::{Deserialize, Serialize};

/// `[debug]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// 0: the tree is printed only on SIGUSR1.
    pub tree_interval_ms: u64,
}

/// `[shutdown]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    pub grace_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { grace_ms: 5000 }
    }
}

/// `[log]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `--log-format` wins over it.
    pub format: LogFormat,
}

/// How each log line is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: a timestamp, the level, the spans and `key=value` fields.
    #[default]
    Text,
    /// For log pipelines: one JSON object a line.
    Json,
}
