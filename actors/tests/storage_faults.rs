//! Storage faults planted in a log's file operations: failed and short writes, failed
//! truncations and syncs. No acknowledged record is ever lost or replaced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::Bytes;
use switchyard_actors::storage::log::Append;
use switchyard_actors::storage::{
    Fault, Faults, LogConfig, Op, PartitionLog, RollSync, StorageError,
};

mod common;
use common::{msg, small};

fn batch(from: u64, n: u64) -> Vec<Append> {
    (from..from + n).map(msg).collect()
}

/// Every value from offset 0, checking offsets are dense.
fn all(log: &PartitionLog) -> Vec<String> {
    let recs = log.read(0, usize::MAX).unwrap();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
    }
    recs.iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect()
}

fn reopened(dir: &Path, cfg: LogConfig) -> PartitionLog {
    let (log, rec) = PartitionLog::open(dir, cfg).unwrap();
    assert_eq!(rec.truncated_bytes, 0, "nothing torn: {rec:?}");
    assert!(rec.damage.is_empty(), "no damage: {rec:?}");
    log
}

fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn a_short_write_leaves_nothing_behind_and_later_appends_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let cfg = LogConfig::default();
    let (mut log, _) = PartitionLog::open_with_faults(dir.path(), cfg, faults.clone()).unwrap();
    assert_eq!(log.append(&batch(0, 5)).unwrap(), 0..5);
    let before = log_bytes(dir.path());
    faults.plant(Op::Write, 0, Fault::Short(30), 1);
    let err = log.append(&batch(5, 3)).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(log_bytes(dir.path()), before, "the partial record was cut");
    assert_eq!(log.append(&batch(5, 3)).unwrap(), 5..8);
    assert_eq!(all(&log).len(), 8);
    drop(log);
    assert_eq!(all(&reopened(dir.path(), cfg)).len(), 8);
}

#[test]
fn a_failed_cut_stops_appends_until_it_can_be_done() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let cfg = LogConfig::default();
    let (mut log, _) = PartitionLog::open_with_faults(dir.path(), cfg, faults.clone()).unwrap();
    log.append(&batch(0, 4)).unwrap();
    faults.plant(Op::Write, 0, Fault::Short(50), 1);
    faults.plant(Op::Truncate, 0, Fault::Io, 3);
    assert!(log.append(&batch(4, 2)).is_err());
    // The torn bytes are still on disk: no append may land after them.
    for _ in 0..2 {
        let e = log.append(&batch(4, 2)).unwrap_err();
        assert!(matches!(e, StorageError::Unwritable { .. }), "{e}");
        assert!(e.to_string().contains("failed write"), "{e}");
    }
    assert!(log.fault().is_some());
    assert_eq!(log.append(&batch(4, 2)).unwrap(), 4..6);
    assert!(log.fault().is_none());
    drop(log);
    assert_eq!(all(&reopened(dir.path(), cfg)).len(), 6);
}

#[test]
fn disk_full_refuses_then_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let cfg = small();
    let (mut log, _) = PartitionLog::open_with_faults(dir.path(), cfg, faults.clone()).unwrap();
    let mut acked = 0u64;
    for _ in 0..10 {
        acked = log.append(&batch(acked, 3)).unwrap().end;
    }
    faults.plant(Op::Write, 0, Fault::NoSpace, 1000);
    for _ in 0..20 {
        assert!(log.append(&batch(acked, 3)).is_err());
    }
    faults.clear();
    for _ in 0..10 {
        acked = log.append(&batch(acked, 3)).unwrap().end;
    }
    assert_eq!(all(&log).len() as u64, acked);
    drop(log);
    assert_eq!(all(&reopened(dir.path(), cfg)).len() as u64, acked);
}

#[test]
fn a_batch_failing_in_its_second_segment_is_undone_whole() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let cfg = small();
    let (mut log, _) = PartitionLog::open_with_faults(dir.path(), cfg, faults.clone()).unwrap();
    log.append(&batch(0, 10)).unwrap();
    let segments = log.segment_count();
    // The second log write of the next batch (in the segment it rolls to) fails; index
    // writes count too, so skip generously and fail every write from there.
    faults.plant(Op::Write, 2, Fault::Short(7), 1000);
    assert!(log.append(&batch(10, 40)).is_err());
    faults.clear();
    assert_eq!(log.segment_count(), segments, "segments it opened are gone");
    assert_eq!(log.next_offset(), 10);
    assert_eq!(log.append(&batch(10, 40)).unwrap(), 10..50);
    drop(log);
    assert_eq!(all(&reopened(dir.path(), cfg)).len(), 50);
}

#[test]
fn an_index_write_failure_undoes_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let cfg = small();
    let (mut log, _) = PartitionLog::open_with_faults(dir.path(), cfg, faults.clone()).unwrap();
    log.append(&batch(0, 2)).unwrap();
    // First write: the records; second: their index entries.
    faults.plant(Op::Write, 1, Fault::Io, 1);
    assert!(log.append(&batch(2, 4)).is_err());
    assert_eq!(log.append(&batch(2, 4)).unwrap(), 2..6);
    drop(log);
    assert_eq!(all(&reopened(dir.path(), cfg)).len(), 6);
}

#[test]
fn a_failed_sync_is_never_taken_as_done() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let cfg = LogConfig::default();
    let (mut log, _) = PartitionLog::open_with_faults(dir.path(), cfg, faults.clone()).unwrap();
    // As under fsync = "interval": records may have been acknowledged before a sync.
    log.set_roll_sync(RollSync::Background);
    log.append(&batch(0, 5)).unwrap();
    log.sync().unwrap();
    log.append(&batch(5, 5)).unwrap();
    faults.plant(Op::Sync, 0, Fault::Io, 1);
    assert!(log.sync().is_err());
    assert!(log.fault().unwrap().contains("fdatasync"));
    // Mending must rewrite what the failed sync covered: with writes failing it cannot,
    // and appends stay refused (a plain second fdatasync would have "succeeded").
    faults.plant(Op::Write, 0, Fault::Io, 1);
    let e = log.append(&batch(10, 1)).unwrap_err();
    assert!(e.to_string().contains("fdatasync"), "{e}");
    assert_eq!(log.append(&batch(10, 1)).unwrap(), 10..11);
    assert_eq!(all(&log).len(), 11, "acked records kept");
    drop(log);
    assert_eq!(all(&reopened(dir.path(), cfg)).len(), 11);
}

#[test]
fn a_failed_sync_of_unacknowledged_records_cuts_them() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let cfg = LogConfig::default();
    let (mut log, _) = PartitionLog::open_with_faults(dir.path(), cfg, faults.clone()).unwrap();
    log.append(&batch(0, 5)).unwrap();
    log.sync().unwrap();
    log.append(&batch(5, 5)).unwrap();
    let h = log.sync_handle().unwrap();
    log.sync_done(h.point, Err("EIO".into()));
    // A log whose acks wait for syncs told nobody about 5..10: they go.
    log.mend(false).unwrap();
    assert_eq!(log.next_offset(), 5);
    assert_eq!(all(&log).len(), 5);
    assert_eq!(log.append(&batch(5, 1)).unwrap(), 5..6);
}

#[test]
fn segments_honour_segment_bytes_within_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small();
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
    log.append(&batch(0, 300)).unwrap();
    assert!(log.segment_count() > 10);
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().ends_with(".log") {
            assert!(e.metadata().unwrap().len() <= 1024, "{e:?}");
        }
    }
    // One record larger than the limit gets a segment of its own.
    let big = Append {
        value: Bytes::from(vec![b'x'; 2000]),
        ..msg(0)
    };
    log.append(&[msg(300), big, msg(302)]).unwrap();
    drop(log);
    let log = reopened(dir.path(), cfg);
    assert_eq!(log.read(0, usize::MAX).unwrap().len(), 303);
}
