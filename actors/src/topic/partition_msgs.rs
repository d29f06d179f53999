//! What a [`super::Partition`] is asked and answers: its fsync policy, appends,
//! fetches, its status (offsets, state, damage) and retention.

use std::ops::Range;
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use switchyard_codecs::record::Record;

use crate::storage::log::Append;

/// When appends become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsyncPolicy {
    /// Answer an append after an `fdatasync` that covers it.
    Always,
    /// Answer at once; `fdatasync` on this period.
    Interval(Duration),
    /// Answer at once; leave flushing to the kernel.
    Never,
}

impl FsyncPolicy {
    /// Its name in the config and the protocol: `always`, `interval` or `never`.
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Interval(_) => "interval",
            FsyncPolicy::Never => "never",
        }
    }

    /// The period of `interval`, in milliseconds.
    pub fn interval_ms(self) -> Option<u64> {
        match self {
            FsyncPolicy::Interval(d) => Some(d.as_millis() as u64),
            _ => None,
        }
    }
}

/// The offsets a batch got, once it is as durable as the policy asks.
pub type Appended = Result<Range<u64>, String>;

/// Appends a batch.
#[derive(Debug, Message)]
#[rtype(result = "Appended")]
pub struct AppendBatch(pub Vec<Append>);

/// Ends the partition for good (its topic is being deleted): every subscriber is told,
/// appends not yet durable are refused, and the actor stops, closing its files. Answered
/// when nothing of it is left running.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Retire;

/// Reads from an offset, up to about `max_bytes` and at most `max_records` (at least
/// one record if any).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Record>, String>")]
pub struct Fetch {
    pub from: u64,
    pub max_bytes: usize,
    pub max_records: usize,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PartitionStatus {
    pub start_offset: u64,
    pub next_offset: u64,
    /// Offsets below this are on disk (`fdatasync` done).
    pub durable_offset: u64,
    pub size_bytes: u64,
    pub segments: usize,
    pub fsyncs: u64,
    /// `ok`; `unwritable` (takes no appends until a storage fault is mended; reads
    /// work); `failed` (its log could not be opened; retried).
    pub state: &'static str,
    /// Why the state is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unreadable offset ranges known, `[first, last]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<[u64; 2]>,
    /// Reads (fetches and subscriptions) that reached unreadable records.
    pub unreadable_reads: u64,
}

#[derive(Debug, Message)]
#[rtype(result = "PartitionStatus")]
pub struct GetPartitionStatus;

/// Deletes closed segments past the retention limits.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ApplyRetention {
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
}
