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

/// The partition `key_hash` routing picks for `key` among `partitions` (at least 1):
/// 64-bit FNV-1a of the key's bytes, modulo the partition count. Public so that a
/// client (`switchyard pub`) can group keyed records by partition as the broker would.
pub fn key_partition(key: &[u8], partitions: u32) -> u32 {
    let h = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % u64::from(partitions.max(1))) as u32
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
    /// `topics.dedup_window_ms` and `topics.dedup_max_ids`.
    pub dedup: crate::topic::dedup::DedupSettings,
    pub topics: Vec<TopicSpec>,
}

#[cfg(test)]
mod tests {
    use super::key_partition;

    #[test]
    fn key_hash_is_fnv1a_64_modulo_the_partitions() {
        // Published FNV-1a 64 values: "" is the offset basis, "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(key_partition(b"", 1000), 37);
        assert_eq!(key_partition(b"a", 1000), 996);
        assert_eq!(key_partition(b"customer-7", 4), 1);
        assert_eq!(key_partition(b"anything", 1), 0);
    }
}
