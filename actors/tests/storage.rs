//! Partition logs on real files: offsets, segments, recovery of torn and corrupt tails,
//! rebuilt indexes, retention.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::OpenOptions;
use std::path::Path;

use bytes::Bytes;
use switchyard_actors::storage::log::Append;
use switchyard_actors::storage::{LogConfig, PartitionLog, RollSync};
use switchyard_codecs::Labels;

fn msg(i: u64, ts: u64) -> Append {
    let mut labels = Labels::new();
    labels.insert("n", i.to_string());
    Append {
        timestamp_ms: ts,
        key: Some(Bytes::from(format!("k{}", i % 3))),
        labels,
        value: Bytes::from(format!("value {i:06}")),
    }
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        max_record_bytes: 4096,
        index_interval_bytes: 128,
    }
}

fn values(log: &PartitionLog, from: u64) -> Vec<String> {
    log.read(from, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect()
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

#[test]
fn offsets_continue_across_reopen_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, rec) = PartitionLog::open(dir.path(), small()).unwrap();
    assert_eq!(rec.next_offset, 0);
    let batch: Vec<Append> = (0..40).map(|i| msg(i, 1000 + i)).collect();
    assert_eq!(log.append(&batch[..25]).unwrap(), 0..25);
    assert_eq!(log.append(&batch[25..]).unwrap(), 25..40);
    log.sync().unwrap();
    assert!(log.segment_count() > 1, "small segments roll");
    let all = log.read(0, usize::MAX).unwrap();
    assert_eq!(
        all.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
    assert_eq!(all[7].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(all[7].labels.get_str("n"), Some("7"));
    assert_eq!(
        values(&log, 33)[0],
        "value 000033",
        "read from the middle through the index"
    );
    let segments = log.segment_count();
    drop(log);

    let (mut log, rec) = PartitionLog::open(dir.path(), small()).unwrap();
    assert_eq!(
        (rec.next_offset, rec.truncated_bytes, rec.segments),
        (40, 0, segments)
    );
    assert_eq!(log.append(&[msg(40, 2000)]).unwrap(), 40..41);
    assert_eq!(values(&log, 40), vec!["value 000040"]);
    // max_bytes bounds a read, but at least one record comes back.
    assert_eq!(log.read(0, 1).unwrap().len(), 1);
}

#[test]
fn a_read_of_n_records_returns_n_whatever_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 64 << 10,
        max_record_bytes: 32 << 10,
        index_interval_bytes: 4096,
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
    // Small records, then ones far larger than a few-record read's first window, across
    // segment boundaries.
    let batch: Vec<Append> = (0..200u64)
        .map(|i| {
            let mut a = msg(i, i);
            let size = if i < 100 { 10 } else { 20_000 + i as usize };
            a.value = Bytes::from(vec![b'a' + (i % 26) as u8; size]);
            a
        })
        .collect();
    for chunk in batch.chunks(7) {
        log.append(chunk).unwrap();
    }
    assert!(log.segment_count() > 10);
    for (from, n) in [
        (0u64, 1usize),
        (5, 10),
        (95, 10),
        (100, 3),
        (150, 7),
        (197, 10),
    ] {
        let got = log.read_records(from, usize::MAX, n).unwrap();
        let want: Vec<u64> = (from..(from + n as u64).min(200)).collect();
        assert_eq!(
            got.iter().map(|r| r.offset).collect::<Vec<_>>(),
            want,
            "from {from}"
        );
        for r in &got {
            assert_eq!(r.value, batch[r.offset as usize].value);
        }
    }
    // The byte bound still holds alongside the count.
    assert_eq!(log.read_records(100, 1, 50).unwrap().len(), 1);
}

#[test]
fn rolls_with_the_closed_segments_synced_in_the_background_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), small()).unwrap();
    log.set_roll_sync(RollSync::Background);
    for i in 0..200 {
        assert_eq!(log.append(&[msg(i, 1000 + i)]).unwrap(), i..i + 1);
    }
    let segments = log.segment_count();
    assert!(segments > 10, "{segments} segments");
    let want: Vec<String> = (0..200).map(|i| format!("value {i:06}")).collect();
    assert_eq!(values(&log, 0), want);
    drop(log);
    let (log, rec) = PartitionLog::open(dir.path(), small()).unwrap();
    assert_eq!(
        (rec.next_offset, rec.truncated_bytes, rec.segments),
        (200, 0, segments)
    );
    assert_eq!(values(&log, 0), want);
}

#[test]
fn a_torn_tail_is_cut_back_to_the_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&(0..10).map(|i| msg(i, 5)).collect::<Vec<_>>())
        .unwrap();
    log.sync().unwrap();
    drop(log);
    let file = dir.path().join(&segment_files(dir.path())[0]);
    let len = std::fs::metadata(&file).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let (mut log, rec) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(rec.next_offset, 9);
    assert!(
        rec.truncated_bytes > 5,
        "the whole torn record goes: {rec:?}"
    );
    assert_eq!(values(&log, 0).len(), 9);
    assert_eq!(log.append(&[msg(99, 6)]).unwrap(), 9..10);
    assert_eq!(values(&log, 9), vec!["value 000099"]);
}

#[test]
fn a_corrupt_record_followed_by_valid_ones_is_reported_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&(0..10).map(|i| msg(i, 5)).collect::<Vec<_>>())
        .unwrap();
    drop(log);
    let file = dir.path().join(&segment_files(dir.path())[0]);
    let mut data = std::fs::read(&file).unwrap();
    let seventh = data.len() * 7 / 10 + 30;
    data[seventh] ^= 0xff;
    std::fs::write(&file, &data).unwrap();
    let (mut log, rec) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(rec.next_offset, 10, "{rec:?}");
    assert_eq!(rec.truncated_bytes, 0);
    assert_eq!(rec.damage.len(), 1, "{rec:?}");
    let d = &rec.damage[0];
    assert_eq!((d.first, d.next), (7, 8));
    assert_eq!(values(&log, 0).len(), 7, "reads stop before the damage");
    let err = log.read(7, usize::MAX).unwrap_err().to_string();
    assert!(err.contains("offsets 7 to 7 are unreadable"), "{err}");
    assert_eq!(values(&log, 8), vec!["value 000008", "value 000009"]);
    // The offset of the damaged record is never given again.
    assert_eq!(log.append(&[msg(10, 6)]).unwrap(), 10..11);
}

#[test]
fn a_missing_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), small()).unwrap();
    for i in 0..60 {
        log.append(&[msg(i, 5)]).unwrap();
    }
    assert!(log.segment_count() > 1);
    drop(log);
    let first = segment_files(dir.path())[0].replace(".log", ".index");
    std::fs::remove_file(dir.path().join(first)).unwrap();
    let (log, rec) = PartitionLog::open(dir.path(), small()).unwrap();
    assert_eq!(rec.rebuilt_indexes, 1);
    assert_eq!(rec.next_offset, 60);
    assert_eq!(values(&log, 3)[0], "value 000003");
}

#[test]
fn retention_by_size_and_by_age_deletes_whole_closed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), small()).unwrap();
    for i in 0..100 {
        log.append(&[msg(i, 1_000 + i)]).unwrap();
    }
    let segments = log.segment_count();
    assert!(segments >= 4);
    // By size: keep at most ~2 KiB; the active segment always stays.
    let deleted = log.apply_retention(0, None, Some(2048)).unwrap();
    assert!(
        deleted > 0 && log.size_bytes() <= 2048 + 1024,
        "{deleted} {}",
        log.size_bytes()
    );
    assert_eq!(segment_files(dir.path()).len(), log.segment_count());
    let start = log.start_offset();
    assert!(start > 0);
    assert_eq!(
        log.read(0, usize::MAX).unwrap()[0].offset,
        start,
        "reads begin at the start offset"
    );

    // By age: everything older than 10 ms at "now" = 10_000 goes, but the active segment.
    let deleted = log.apply_retention(10_000, Some(10), None).unwrap();
    assert!(deleted > 0);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.next_offset(), 100);
    let (_, rec) = PartitionLog::open(dir.path(), small()).unwrap();
    assert_eq!(rec.next_offset, 100);
}

#[test]
fn a_small_read_of_large_records_reads_each_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let big = |i: u8| Append {
        timestamp_ms: 1,
        key: None,
        labels: Labels::new(),
        value: Bytes::from(vec![i; 100_000]),
    };
    log.append(&[big(1), msg(1, 2), big(2)]).unwrap();
    for (from, len) in [(0, 100_000), (1, 12), (2, 100_000)] {
        let r = log.read(from, 10).unwrap();
        assert_eq!(r.len(), 1, "at most about max_bytes, at least one record");
        assert_eq!((r[0].offset, r[0].value.len()), (from, len));
    }
    // Whole records while under max_bytes: the last one may pass it.
    assert_eq!(log.read(0, 150_000).unwrap().len(), 3);
    assert_eq!(log.read(0, 90_000).unwrap().len(), 1);
}
