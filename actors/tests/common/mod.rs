//! What the storage tests share: a small log config, records, a partition's segments.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use switchyard_actors::storage::log::Append;
use switchyard_actors::storage::LogConfig;
use switchyard_codecs::Labels;

/// 1 KiB segments, 4 KiB records, an index entry per 128 bytes.
pub fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        max_record_bytes: 4096,
        index_interval_bytes: 128,
    }
}

/// Record `i`: value `value <i, 6 digits>`, no key, no labels.
pub fn msg(i: u64) -> Append {
    Append {
        timestamp_ms: 1_700_000_000_000 + i,
        key: None,
        labels: Labels::new(),
        value: Bytes::from(format!("value {i:06}")),
    }
}

/// The `.log` files of a partition folder, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}
