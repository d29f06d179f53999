//! The ids of the last window, read back from a partition's log when its topic opens:
//! an acknowledged publish's `msg_id` is on disk with its records, so a restart (or a
//! `kill -9`) forgets none that is still in its window.

use tracing::warn;

use super::{Id, MSG_ID};
use crate::storage::{PartitionLog, StorageError};

/// What reading a partition back found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Records read (those of the window, and the older ones of its first segment).
    pub records: u64,
    /// Records that carry a `msg_id`.
    pub with_id: u64,
}

/// A record with an id: (timestamp, partition, offset, id).
pub type Found = (u64, u32, u64, Id);

/// Appends to `out` every record of `log` stamped `since_ms` or later that carries a
/// `msg_id`, in offset order. Reads start at the oldest segment that holds such records;
/// unreadable offsets are passed over (their ids are lost with them).
pub fn rebuild(
    log: &PartitionLog,
    partition: u32,
    since_ms: u64,
    out: &mut Vec<Found>,
) -> Recovered {
    let mut got = Recovered::default();
    let mut from = log.offset_since(since_ms);
    while from < log.next_offset() {
        let records = match log.read(from, 1 << 20) {
            Ok(r) if r.is_empty() => break,
            Ok(r) => r,
            Err(StorageError::Damaged { last, .. }) => {
                from = last + 1;
                continue;
            }
            Err(e) => {
                warn!(partition, error = %e, "msg_id index not rebuilt past this offset; duplicates of its later publishes are stored again");
                break;
            }
        };
        for r in &records {
            got.records += 1;
            if r.timestamp_ms < since_ms {
                continue;
            }
            if let Some(id) = r.labels.get(MSG_ID) {
                got.with_id += 1;
                // Copied: a slice would pin the whole read.
                out.push((r.timestamp_ms, partition, r.offset, Id::from(&id[..])));
            }
        }
        from = records.last().map_or(from, |r| r.offset + 1);
    }
    got
}
