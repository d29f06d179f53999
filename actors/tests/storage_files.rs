//! Closed segments keep no descriptor open: opening a log of many segments costs the
//! active segment's two, and reads open closed ones through a bounded LRU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use switchyard_actors::storage::files;
use switchyard_actors::storage::log::Append;
use switchyard_actors::storage::{LogConfig, PartitionLog};
use switchyard_codecs::Labels;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn closed_segments_open_only_through_a_bounded_cache() {
    files::set_open_files_limit(8);
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1024,
        max_record_bytes: 4096,
        index_interval_bytes: 128,
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
    let recs: Vec<Append> = (0..2000u64)
        .map(|i| Append {
            timestamp_ms: i,
            key: None,
            labels: Labels::new(),
            value: Bytes::from(format!("record {i:06}")),
        })
        .collect();
    log.append(&recs).unwrap();
    let segments = log.segment_count();
    assert!(segments > 50, "{segments}");
    drop(log);

    let before = open_fds();
    let (log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
    assert!(
        open_fds() <= before + 3,
        "{} fds for {segments} segments",
        open_fds() - before
    );
    let mut from = 0;
    while from < 2000 {
        let r = log.read(from, 4096).unwrap();
        from = r.last().unwrap().offset + 1;
    }
    assert!(files::open_count() <= 8);
    assert!(open_fds() <= before + 3 + 8);
}
