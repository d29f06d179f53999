//! The partition actor: group commit under `fsync = always`, acks per policy, reads;
//! under a failed `fdatasync`, nothing it covered is acknowledged, appends stop (the
//! partition shows as unwritable) until the log is mended, and no acked offset is reused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use switchyard_actors::storage::log::Append;
use switchyard_actors::storage::{Fault, Faults, LogConfig, Op, PartitionLog};
use switchyard_actors::topic::partition::{AppendBatch, ApplyRetention, Fetch, GetPartitionStatus};
use switchyard_actors::topic::{FsyncPolicy, Partition};
use switchyard_codecs::Labels;

fn batch(n: usize, tag: usize) -> Vec<Append> {
    (0..n)
        .map(|i| Append {
            timestamp_ms: 1,
            key: None,
            labels: Labels::new(),
            value: Bytes::from(format!("{tag}:{i}")),
        })
        .collect()
}

fn start(dir: &std::path::Path, policy: FsyncPolicy) -> Addr<Partition> {
    let (log, _) = PartitionLog::open(dir, LogConfig::default()).unwrap();
    Partition::new("t", 0, log, policy).start()
}

#[actix_rt::test]
async fn always_acks_after_a_shared_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), FsyncPolicy::Always);
    // 200 batches in flight at once: they share far fewer fsyncs.
    let pending: Vec<_> = (0..200)
        .map(|t| actix_rt::spawn(p.send(AppendBatch(batch(10, t)))))
        .collect();
    let mut ranges = Vec::new();
    for h in pending {
        ranges.push(h.await.unwrap().unwrap().unwrap());
    }
    ranges.sort_by_key(|r| r.start);
    for (i, r) in ranges.iter().enumerate() {
        assert_eq!(*r, (i as u64 * 10)..(i as u64 * 10 + 10));
    }
    let st = p.send(GetPartitionStatus).await.unwrap();
    assert_eq!((st.next_offset, st.durable_offset), (2000, 2000));
    assert!(
        st.fsyncs >= 1 && st.fsyncs < 200,
        "group commit: {} fsyncs for 200 appends",
        st.fsyncs
    );
    let recs = p
        .send(Fetch {
            from: 1995,
            max_bytes: 1 << 20,
            max_records: usize::MAX,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![1995, 1996, 1997, 1998, 1999]
    );
    // A read of a few records stops there, however many bytes it may take.
    let recs = p
        .send(Fetch {
            from: 100,
            max_bytes: 1 << 20,
            max_records: 3,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![100, 101, 102]
    );
    System::current().stop();
}

#[actix_rt::test]
async fn never_and_interval_ack_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), FsyncPolicy::Never);
    assert_eq!(
        p.send(AppendBatch(batch(5, 0))).await.unwrap().unwrap(),
        0..5
    );
    let st = p.send(GetPartitionStatus).await.unwrap();
    assert_eq!((st.next_offset, st.fsyncs, st.durable_offset), (5, 0, 0));

    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), FsyncPolicy::Interval(Duration::from_millis(20)));
    assert_eq!(
        p.send(AppendBatch(batch(5, 0))).await.unwrap().unwrap(),
        0..5
    );
    for _ in 0..200 {
        if p.send(GetPartitionStatus).await.unwrap().durable_offset == 5 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the interval fsync never ran");
}

fn log_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count()
}

#[actix_rt::test]
async fn retention_detaches_segments_at_once_and_deletes_their_files_off_the_actor() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1024,
        ..LogConfig::default()
    };
    let (log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
    let p = Partition::new("t", 0, log, FsyncPolicy::Never).start();
    for t in 0..40 {
        p.send(AppendBatch(batch(5, t))).await.unwrap().unwrap();
    }
    let before = log_files(dir.path());
    assert!(before > 5, "{before} segments");
    p.send(ApplyRetention {
        retention_ms: None,
        retention_bytes: Some(2048),
    })
    .await
    .unwrap();
    // Reads and the status see the retention at once…
    let st = p.send(GetPartitionStatus).await.unwrap();
    assert!(
        st.start_offset > 0 && st.size_bytes <= 2048 + 1024,
        "{st:?}"
    );
    let first = p
        .send(Fetch {
            from: 0,
            max_bytes: 1 << 20,
            max_records: usize::MAX,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first[0].offset, st.start_offset);
    // …the files go shortly after, and appends carry on meanwhile.
    let r = p.send(AppendBatch(batch(1, 99))).await.unwrap().unwrap();
    assert_eq!(r, 200..201);
    let now = p.send(GetPartitionStatus).await.unwrap().segments;
    for _ in 0..100 {
        if log_files(dir.path()) == now {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(log_files(dir.path()), now);
    assert!(now < before);
}

#[actix_rt::test]
async fn a_failed_fsync_acks_nothing_and_appends_resume_once_mended() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let (log, _) =
        PartitionLog::open_with_faults(dir.path(), LogConfig::default(), faults.clone()).unwrap();
    let p = Partition::new("t", 0, log, FsyncPolicy::Always).start();
    assert_eq!(p.send(AppendBatch(batch(5, 1))).await.unwrap(), Ok(0..5));

    faults.plant(Op::Sync, 0, Fault::Io, 1);
    let e = p.send(AppendBatch(batch(3, 2))).await.unwrap().unwrap_err();
    assert!(e.contains("fdatasync failed"), "{e}");
    let st = p.send(GetPartitionStatus).await.unwrap();
    assert_eq!(st.durable_offset, 5);

    // Mended within a few ticks: the unacknowledged records were cut, nothing acked was.
    let mut resumed = None;
    for _ in 0..100 {
        match p.send(AppendBatch(batch(2, 3))).await.unwrap() {
            Ok(r) => {
                resumed = Some(r);
                break;
            }
            Err(e) => assert!(
                e.contains("storage fault") || e.contains("fdatasync"),
                "{e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        resumed,
        Some(5..7),
        "offsets of the cut records are the next ones"
    );
    let st = p.send(GetPartitionStatus).await.unwrap();
    assert_eq!(st.state, "ok");
    let recs = p
        .send(Fetch {
            from: 0,
            max_bytes: 1 << 20,
            max_records: usize::MAX,
        })
        .await
        .unwrap()
        .unwrap();
    let values: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["1:0", "1:1", "1:2", "1:3", "1:4", "3:0", "3:1"]);
}

#[actix_rt::test]
async fn a_failed_fsync_under_interval_keeps_acked_records_and_shows_unwritable() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let (log, _) =
        PartitionLog::open_with_faults(dir.path(), LogConfig::default(), faults.clone()).unwrap();
    let policy = FsyncPolicy::Interval(Duration::from_millis(20));
    let p = Partition::new("t", 0, log, policy).start();
    assert_eq!(p.send(AppendBatch(batch(5, 1))).await.unwrap(), Ok(0..5));
    // The interval sync fails; the rewrite that mending needs fails for a while too.
    faults.plant(Op::Sync, 0, Fault::Io, 1);
    faults.plant(Op::Write, 0, Fault::Io, 1000);
    let mut saw_unwritable = false;
    for _ in 0..100 {
        let st = p.send(GetPartitionStatus).await.unwrap();
        if st.state == "unwritable" {
            assert!(st.error.unwrap().contains("fdatasync"));
            saw_unwritable = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_unwritable);
    assert!(p.send(AppendBatch(batch(1, 4))).await.unwrap().is_err());
    faults.clear();
    let mut resumed = None;
    for _ in 0..100 {
        if let Ok(r) = p.send(AppendBatch(batch(1, 5))).await.unwrap() {
            resumed = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(resumed, Some(5..6), "acked records kept, no offset reused");
}
