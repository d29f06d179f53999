//! `config.toml`: every section optional, unknown keys refused, and every error naming
//! the file, the line, the key and what was expected.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchyard_actors::auth::{AuthConfig, Cidr};
use switchyard_actors::maze::OnNewSource;
use switchyard_actors::topic::Routing;
use switchyard_actors::SlowConsumer;

mod auth;
mod bind;
mod chat;
mod command;
mod diff;
mod drivers;
mod error;
mod gateway;
mod ops;
mod settings;
mod tls;
mod topics;

pub use chat::{AdapterConfig, ChatConfig, ConsoleConfig, PluginConfig, RateConfig};
pub use drivers::{DoConfig, DriverConfig, DriversConfig, RuleConfig, WhenConfig};
pub use gateway::GatewayConfig;
pub use ops::{DebugConfig, LogConfig, LogFormat, ShutdownConfig};
pub use tls::TlsConfig;

pub use error::ConfigError;
use error::{at_key, from_toml};

/// The shipped `config.toml`, used when no `./config.toml` exists.
pub const SHIPPED: &str = include_str!("../../config.toml");

/// A whole number within `LO..=HI`, refused at parse time (so the error has a line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Ranged<const LO: u64, const HI: u64>(u64);

impl<const LO: u64, const HI: u64> Ranged<LO, HI> {
    /// `n` clamped into the range; for defaults.
    pub const fn new(n: u64) -> Self {
        Ranged(if n < LO {
            LO
        } else if n > HI {
            HI
        } else {
            n
        })
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<const LO: u64, const HI: u64> TryFrom<u64> for Ranged<LO, HI> {
    type Error = String;

    fn try_from(n: u64) -> Result<Self, String> {
        if (LO..=HI).contains(&n) {
            Ok(Ranged(n))
        } else {
            Err(format!("expected a number from {LO} to {HI}, got {n}"))
        }
    }
}

impl<const LO: u64, const HI: u64> From<Ranged<LO, HI>> for u64 {
    fn from(r: Ranged<LO, HI>) -> u64 {
        r.0
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub broker: BrokerConfig,
    pub supervisor: SupervisorConfig,
    pub debug: DebugConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    pub storage: StorageConfig,
    pub topics: TopicsConfig,
    /// Topics configured up front.
    #[serde(rename = "topic", skip_serializing_if = "Vec::is_empty")]
    pub topic: Vec<TopicConfig>,
    /// The follower maze; off when the section is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maze: Option<MazeConfig>,
    pub drivers: DriversConfig,
    /// Driver processes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub driver: Vec<DriverConfig>,
    /// Event-bus rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule: Vec<RuleConfig>,
    /// Chat-ops; off when the section is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatConfig>,
    /// The HTTP/JSON and gRPC gateway; off when the section is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayConfig>,
    /// Users and permissions; without it every peer may do everything (loopback only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Certificates for `broker.tls` and `gateway.tls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// `[broker]`: the broker port and the bounds of every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// `host:port`; a host name is resolved when the config is read.
    #[serde(deserialize_with = "bind::required")]
    pub bind: SocketAddr,
    pub max_connections: Ranged<1, 1_000_000>,
    /// Open broker-port connections one peer address may have (loopback included).
    pub max_connections_per_ip: Ranged<1, 1_000_000>,
    /// A connection that sends no complete frame within this long is closed; 0: never.
    pub first_frame_timeout_ms: u64,
    /// The accept queue of every listening port (the kernel caps it at somaxconn).
    pub listen_backlog: Ranged<1, 65_535>,
    pub max_frame_bytes: Ranged<256, GIB>,
    pub max_labels: Ranged<0, 65_536>,
    pub max_label_bytes: Ranged<1, GIB>,
    pub max_line_bytes: Ranged<64, MIB>,
    /// Envelopes over `max_frame_bytes` up to this size are skipped and answered with
    /// an error; larger ones close the connection. 0: always close.
    pub max_skip_bytes: u64,
    pub output_buffer_bytes: Ranged<1024, { 64 * GIB }>,
    pub max_inflight: Ranged<1, 1_000_000>,
    pub idle_timeout_ms: u64,
    /// A connection that has read nothing for this long releases its read buffer.
    pub buffer_release_ms: Ranged<1, 3_600_000>,
    pub slow_consumer: SlowConsumer,
    /// The broker-wide budget for buffered input and output (read buffers, queued
    /// output, deliveries on their way, gateway streams).
    pub memory_limit_bytes: Ranged<MIB, { 1024 * GIB }>,
    /// The broker writes its pid here (for `switchyard reload`); unset: no file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    /// The port speaks TLS only (`[tls]` has the certificates).
    pub tls: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 7400)),
            max_connections: Ranged::new(1024),
            max_connections_per_ip: Ranged::new(256),
            first_frame_timeout_ms: 10_000,
            listen_backlog: Ranged::new(1024),
            max_frame_bytes: Ranged::new(MIB),
            max_labels: Ranged::new(64),
            max_label_bytes: Ranged::new(64 * KIB),
            max_line_bytes: Ranged::new(4 * KIB),
            max_skip_bytes: 64 * MIB,
            output_buffer_bytes: Ranged::new(4 * MIB),
            max_inflight: Ranged::new(1024),
            idle_timeout_ms: 0,
            buffer_release_ms: Ranged::new(1000),
            slow_consumer: SlowConsumer::Disconnect,
            memory_limit_bytes: Ranged::new(512 * MIB),
            pid_file: None,
            tls: false,
        }
    }
}

/// `[supervisor]`: the restart policy of the root supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    pub max_restarts: Ranged<0, 10_000>,
    pub within_ms: Ranged<1, { 24 * 3_600_000 }>,
    pub backoff_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            max_restarts: Ranged::new(5),
            within_ms: Ranged::new(60_000),
            backoff_ms: 100,
            backoff_max_ms: 10_000,
        }
    }
}

/// `[maze]`: the follower-maze ports and the event stream's bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MazeConfig {
    #[serde(deserialize_with = "bind::required")]
    pub event_bind: SocketAddr,
    #[serde(deserialize_with = "bind::required")]
    pub client_bind: SocketAddr,
    pub reorder_window: Ranged<1, 16_777_216>,
    pub id_timeout_ms: Ranged<1, 3_600_000>,
    pub on_new_source: OnNewSource,
    pub gap_timeout_ms: u64,
    pub max_clients: Ranged<1, 1_000_000>,
    /// Connected user clients from one peer address.
    pub max_clients_per_ip: Ranged<1, 1_000_000>,
    pub max_users: Ranged<1, 100_000_000>,
    pub pace_output_bytes: Ranged<65_536, { 64 * GIB }>,
    pub client_stall_ms: Ranged<1, 3_600_000>,
    /// Append every maze event to this topic (partition 0), to replay the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Peer networks the maze ports admit; empty: any peer (loopback binds only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Cidr>,
}

impl Default for MazeConfig {
    fn default() -> Self {
        MazeConfig {
            event_bind: SocketAddr::from(([127, 0, 0, 1], 9090)),
            client_bind: SocketAddr::from(([127, 0, 0, 1], 9099)),
            reorder_window: Ranged::new(65_536),
            id_timeout_ms: Ranged::new(10_000),
            on_new_source: OnNewSource::Reset,
            gap_timeout_ms: 0,
            max_clients: Ranged::new(10_000),
            max_clients_per_ip: Ranged::new(10_000),
            max_users: Ranged::new(1_000_000),
            pace_output_bytes: Ranged::new(8 * MIB),
            client_stall_ms: Ranged::new(10_000),
            topic: None,
            allow: Vec::new(),
        }
    }
}

/// When appends are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Acknowledge after an `fdatasync` that covers the append (group commit).
    #[default]
    Always,
    /// Acknowledge at once; `fdatasync` every `fsync_interval_ms`.
    Interval,
    /// Acknowledge at once; the kernel flushes when it likes.
    Never,
}

/// `[storage]`: where and how partition logs are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub dir: PathBuf,
    pub fsync: Fsync,
    pub fsync_interval_ms: Ranged<1, 3_600_000>,
    pub segment_bytes: Ranged<4096, { 64 * GIB }>,
    /// 0: keep for ever.
    pub retention_ms: u64,
    /// 0: no size limit.
    pub retention_bytes: u64,
    pub retention_check_ms: Ranged<10, 86_400_000>,
    /// Closed segments' files kept open at most (an LRU across all partitions).
    pub max_open_segments: Ranged<1, 1_000_000>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("data"),
            fsync: Fsync::Always,
            fsync_interval_ms: Ranged::new(1000),
            segment_bytes: Ranged::new(64 * MIB),
            retention_ms: 0,
            retention_bytes: 0,
            retention_check_ms: Ranged::new(60_000),
            max_open_segments: Ranged::new(256),
        }
    }
}

/// `[topics]`: topics made on first use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    pub default_partitions: Ranged<1, 4096>,
    pub auto_create: bool,
    /// The most one fetch reads, on every front end.
    pub max_fetch_bytes: Ranged<1024, { 64 * MIB }>,
    /// Partitions a new topic may have, and all topics together.
    pub max_partitions_per_topic: Ranged<1, 4096>,
    pub max_partitions: Ranged<1, 1_000_000>,
    /// How long a publish's `msg_id` is remembered; 0 turns idempotent publish off.
    pub dedup_window_ms: Ranged<0, 86_400_000>,
    /// `msg_id`s remembered at most, over all topics.
    pub dedup_max_ids: Ranged<1, 10_000_000>,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            default_partitions: Ranged::new(1),
            auto_create: true,
            max_fetch_bytes: Ranged::new(4 * MIB),
            max_partitions_per_topic: Ranged::new(1024),
            max_partitions: Ranged::new(10_000),
            dedup_window_ms: Ranged::new(120_000),
            dedup_max_ids: Ranged::new(200_000),
        }
    }
}

/// One `[[topic]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    pub name: String,
    #[serde(default = "one")]
    pub partitions: Ranged<1, 4096>,
    #[serde(default)]
    pub routing: Routing,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsync: Option<Fsync>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
}

fn one() -> Ranged<1, 4096> {
    Ranged::new(1)
}

/// Where a config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("<embedded config.toml>"),
        }
    }
}

impl Config {
    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| from_toml(&e, text, file))?;
        config.read_hash_files(text, file)?;
        config.validate(text, file)?;
        Ok(config)
    }

    /// Reads `path`; with no path, `./config.toml`, or the shipped copy when that file
    /// does not exist.
    pub fn load(path: Option<&Path>) -> Result<(Config, Source), ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("config.toml"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((
                Config::parse(&text, &path.display().to_string())?,
                Source::File(path),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok((
                Config::parse(SHIPPED, "<embedded config.toml>")?,
                Source::Embedded,
            )),
            Err(e) => Err(ConfigError {
                file: path.display().to_string(),
                line: None,
                key: None,
                message: format!("cannot read: {e}"),
                source_line: None,
            }),
        }
    }

    /// Rules that tie one key to another.
    fn validate(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let b = &self.broker;
        if b.output_buffer_bytes.get() < b.max_frame_bytes.get() {
            return Err(at_key(text, file, "broker", "output_buffer_bytes", format!(
                "expected at least broker.max_frame_bytes ({}), got {}: a connection must be able to queue one whole frame",
                b.max_frame_bytes.get(), b.output_buffer_bytes.get()
            )));
        }
        if b.memory_limit_bytes.get() < b.max_frame_bytes.get() {
            return Err(at_key(text, file, "broker", "memory_limit_bytes", format!(
                "expected at least broker.max_frame_bytes ({}), got {}: the broker must be able to hold one whole frame",
                b.max_frame_bytes.get(), b.memory_limit_bytes.get()
            )));
        }
        if b.max_line_bytes.get() > b.max_frame_bytes.get() {
            return Err(at_key(
                text,
                file,
                "broker",
                "max_line_bytes",
                format!(
                    "expected at most broker.max_frame_bytes ({}), got {}",
                    b.max_frame_bytes.get(),
                    b.max_line_bytes.get()
                ),
            ));
        }
        if let Some(t) = self.maze.as_ref().and_then(|m| m.topic.as_ref()) {
            if !switchyard_actors::topic::registry::valid_name(t) {
                return Err(at_key(
                    text,
                    file,
                    "maze",
                    "topic",
                    format!(
                        "expected 1 to 128 of A-Z a-z 0-9 . _ -, not starting with `.`, got `{t}`"
                    ),
                ));
            }
        }
        for (i, t) in self.topic.iter().enumerate() {
            if !switchyard_actors::topic::registry::valid_name(&t.name) {
                return Err(drivers::at_entry(
                    text,
                    file,
                    "topic",
                    i,
                    "name",
                    format!(
                        "expected 1 to 128 of A-Z a-z 0-9 . _ -, not starting with `.`, got `{}`",
                        t.name
                    ),
                ));
            }
        }
        self.validate_topics(text, file)?;
        self.validate_drivers(text, file)?;
        self.validate_chat(text, file)?;
        self.validate_auth(text, file)?;
        self.validate_tls(text, file)?;
        let s = &self.supervisor;
        if s.backoff_max_ms < s.backoff_ms {
            return Err(at_key(
                text,
                file,
                "supervisor",
                "backoff_max_ms",
                format!(
                    "expected at least supervisor.backoff_ms ({}), got {}",
                    s.backoff_ms, s.backoff_max_ms
                ),
            ));
        }
        Ok(())
    }

    /// The effective config as TOML, defaults filled in.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod tests;
