//! The partition actor under storage faults: under `fsync = always` a failed
//! `fdatasync` acknowledges nothing it covered, stops appends (the partition shows as
//! unwritable) until the log is mended, and never hands out the offsets of records it
//! acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use switchyard_actors::storage::log::Append;
use switchyard_actors::storage::{Fault, Faults, LogConfig, Op, PartitionLog};
use switchyard_actors::topic::partition::{AppendBatch, Fetch, GetPartitionStatus};
use switchyard_actors::topic::{FsyncPolicy, Partition};
use switchyard_codecs::Labels;

fn batch(n: usize, tag: &str) -> Vec<Append> {
    (0..n)
        .map(|i| Append {
            timestamp_ms: 1,
            key: None,
            labels: Labels::new(),
            value: Bytes::from(format!("{tag}:{i}")),
        })
        .collect()
}

#[actix_rt::test]
async fn a_failed_fsync_acks_nothing_and_appends_resume_once_mended() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let (log, _) =
        PartitionLog::open_with_faults(dir.path(), LogConfig::default(), faults.clone()).unwrap();
    let p = Partition::new("t", 0, log, FsyncPolicy::Always).start();
    assert_eq!(p.send(AppendBatch(batch(5, "a"))).await.unwrap(), Ok(0..5));

    faults.plant(Op::Sync, 0, Fault::Io, 1);
    let e = p
        .send(AppendBatch(batch(3, "b")))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.contains("fdatasync failed"), "{e}");
    let st = p.send(GetPartitionStatus).await.unwrap();
    assert_eq!(st.durable_offset, 5);

    // Mended within a few ticks: the unacknowledged records were cut, nothing acked was.
    let mut resumed = None;
    for _ in 0..100 {
        match p.send(AppendBatch(batch(2, "c"))).await.unwrap() {
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
        })
        .await
        .unwrap()
        .unwrap();
    let values: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["a:0", "a:1", "a:2", "a:3", "a:4", "c:0", "c:1"]);
}

#[actix_rt::test]
async fn a_failed_fsync_under_interval_keeps_acked_records_and_shows_unwritable() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let (log, _) =
        PartitionLog::open_with_faults(dir.path(), LogConfig::default(), faults.clone()).unwrap();
    let policy = FsyncPolicy::Interval(Duration::from_millis(20));
    let p = Partition::new("t", 0, log, policy).start();
    assert_eq!(p.send(AppendBatch(batch(5, "a"))).await.unwrap(), Ok(0..5));
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
    assert!(p.send(AppendBatch(batch(1, "x"))).await.unwrap().is_err());
    faults.clear();
    let mut resumed = None;
    for _ in 0..100 {
        if let Ok(r) = p.send(AppendBatch(batch(1, "b"))).await.unwrap() {
            resumed = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(resumed, Some(5..6), "acked records kept, no offset reused");
}
