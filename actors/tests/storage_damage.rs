//! Damage found and reported, never skipped in silence or overwritten: a flipped byte
//! in a closed segment, a closed segment cut to half, a large segment recovered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::Bytes;
use switchyard_actors::storage::log::Append;
use switchyard_actors::storage::{LogConfig, PartitionLog, StorageError};

mod common;
use common::{msg, segments, small};

fn written(dir: &Path, n: u64) {
    let (mut log, _) = PartitionLog::open(dir, small()).unwrap();
    log.append(&(0..n).map(msg).collect::<Vec<_>>()).unwrap();
    log.sync().unwrap();
}

/// Reads from `from` to the end, skipping reported ranges as a client would; returns
/// the offsets read and the ranges skipped.
fn read_all(log: &PartitionLog, mut from: u64) -> (Vec<u64>, Vec<(u64, u64)>) {
    let (mut got, mut skipped) = (Vec::new(), Vec::new());
    while from < log.next_offset() {
        match log.read(from, 300) {
            Ok(recs) => {
                assert!(!recs.is_empty(), "a read below the end returns records");
                for r in recs {
                    assert_eq!(r.offset, from);
                    got.push(r.offset);
                    from += 1;
                }
            }
            Err(StorageError::Damaged { first, last, .. }) => {
                assert_eq!(first, from);
                skipped.push((first, last));
                from = last + 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    (got, skipped)
}

#[test]
fn a_flipped_byte_in_a_closed_segment_is_reported_with_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path(), 100);
    let segs = segments(dir.path());
    assert!(segs.len() > 3);
    let mut data = std::fs::read(&segs[1]).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x40;
    std::fs::write(&segs[1], &data).unwrap();
    let (log, _) = PartitionLog::open(dir.path(), small()).unwrap();
    let (got, skipped) = read_all(&log, 0);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let (first, last) = skipped[0];
    assert_eq!(first, last, "one record lost");
    assert_eq!(got.len(), 99);
    assert_eq!(log.damage().len(), 1);
    let e = log.read(first, 100).unwrap_err().to_string();
    assert!(e.contains(&format!("offsets {first} to {last}")), "{e}");
    assert!(
        !e.contains(dir.path().to_str().unwrap()),
        "no server path: {e}"
    );
}

#[test]
fn a_closed_segment_cut_to_half_is_a_gap_found_at_start() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path(), 100);
    let segs = segments(dir.path());
    let len = std::fs::metadata(&segs[1]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[1])
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (log, rec) = PartitionLog::open(dir.path(), small()).unwrap();
    assert_eq!(rec.damage.len(), 1, "{rec:?}");
    let d = &rec.damage[0];
    assert!(d.next > d.first);
    let (got, skipped) = read_all(&log, 0);
    assert_eq!(skipped, vec![(d.first, d.next - 1)]);
    assert_eq!(got.len() as u64 + (d.next - d.first), 100);
    assert_eq!(log.next_offset(), 100, "offsets are not reused");
}

#[test]
fn a_segment_larger_than_the_scan_window_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 64 << 20,
        max_record_bytes: 1 << 20,
        index_interval_bytes: 4096,
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
    let big: Vec<Append> = (0..12)
        .map(|i| Append {
            value: Bytes::from(vec![b'a' + i as u8; 300_000]),
            ..msg(i)
        })
        .collect();
    log.append(&big).unwrap();
    drop(log);
    // A torn tail: half of a last record.
    let seg = &segments(dir.path())[0];
    let len = std::fs::metadata(seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(seg)
        .unwrap()
        .set_len(len - 150_000)
        .unwrap();
    let (log, rec) = PartitionLog::open(dir.path(), cfg).unwrap();
    assert!(rec.damage.is_empty());
    assert!(rec.truncated_bytes > 0);
    assert_eq!(log.next_offset(), 11);
    assert_eq!(log.read(0, usize::MAX).unwrap().len(), 11);
}
