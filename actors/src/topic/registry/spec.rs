//! What a topic is made with ([`TopicSpec`], its [`Routing`]) and what the registry is
//! told ([`TopicSettings`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::storage::LogConfig;
use crate::topic::partition::FsyncPolicy;

/// How a topic picks the partition of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Partitions in turn, from 0.
    #[default]
    RoundRobin,
    /// A hash of the key; publishes without a key go round robin.
    KeyHash,
    /// The publisher names the partition.
    Explicit,
}

impl Routing {
    /// Its name in the config and the protocol.
    pub fn name(self) -> &'static str {
        match self {
            Routing::RoundRobin => "round_robin",
            Routing::KeyHash => "key_hash",
            Routing::Explicit => "explicit",
        }
    }
}

impl std::fmt::Display for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One configured topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub routing: Routing,
    pub fsync: Option<FsyncPolicy>,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub dir: PathBuf,
    pub fsync: FsyncPolicy,
    pub log: LogConfig,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub retention_check: Duration,
    pub default_partitions: u32,
    pub auto_create: bool,
    /// The most one fetch reads (`topics.max_fetch_bytes`), on every front end.
    pub max_fetch_bytes: usize,
    /// Partitions a new topic may have, and all topics together.
    pub max_partitions_per_topic: u32,
    pub max_partitions: usize,
    pub topics: Vec<TopicSpec>,
}
