//! `switchyard verify [--repair]` on a data dir with a flipped byte, a torn tail and a
//! lost index: found, reported, repaired without losing a readable record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use switchyard_actors::storage::log::Append;
use switchyard_actors::storage::{LogConfig, PartitionLog};
use switchyard_codecs::Labels;

mod common;
use common::segments;

fn verify(data: &Path, repair: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(["verify", "--dir", data.to_str().unwrap()]);
    if repair {
        cmd.arg("--repair");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn verify_finds_damage_and_repair_keeps_every_readable_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let part = data.join("t").join("0");
    // The defaults the binary uses for segments of this size: one segment per 4 KiB.
    let cfg = LogConfig {
        segment_bytes: 4096,
        max_record_bytes: (1 << 20) + 1024,
        index_interval_bytes: 4096,
    };
    let (mut log, _) = PartitionLog::open(&part, cfg).unwrap();
    let recs: Vec<Append> = (0..300u64)
        .map(|i| Append {
            timestamp_ms: i,
            key: None,
            labels: Labels::new(),
            value: Bytes::from(format!("{i:05}{}", "r".repeat(60))),
        })
        .collect();
    log.append(&recs).unwrap();
    drop(log);
    let (ok, text) = verify(&data, false);
    assert_eq!(ok, 0, "{text}");
    assert!(text.contains("t/0: ok"), "{text}");

    let segs = segments(&part);
    assert!(segs.len() > 3);
    let mut b = std::fs::read(&segs[1]).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(&segs[1], &b).unwrap();
    std::fs::remove_file(segs[2].with_extension("index")).unwrap();
    let (code, text) = verify(&data, false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("t/0: DAMAGED"), "{text}");
    assert!(text.contains("unreadable"), "{text}");
    assert!(text.contains("indexes out of date"), "{text}");

    let (code, text) = verify(&data, true);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("repaired"), "{text}");
    assert_eq!(
        std::fs::read_dir(part.join("quarantine")).unwrap().count(),
        1
    );

    // Every record but the damaged one reads; the lost offset stays reported.
    let (log, _) = PartitionLog::open(&part, cfg).unwrap();
    let (mut n, mut lost, mut from) = (0u64, 0u64, 0u64);
    while from < 300 {
        match log.read(from, usize::MAX) {
            Ok(r) => {
                n += r.len() as u64;
                from = r.last().unwrap().offset + 1;
            }
            Err(switchyard_actors::storage::StorageError::Damaged { first, last, .. }) => {
                assert_eq!(first, from);
                lost += last - first + 1;
                from = last + 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((n, lost), (299, 1));
    let (code, text) = verify(&data, false);
    assert_eq!(code, 1, "the lost offset is still reported: {text}");
    assert!(!text.contains("indexes out of date"), "{text}");
}

/// A repair rewrites segments, so it refuses a data dir a broker is running on (a
/// check alone still runs: it only reads).
#[actix_rt::test]
async fn repair_refuses_a_data_dir_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let b = switchyard::start(&common::topics::config(&data, ""))
        .await
        .unwrap();
    let d = data.clone();
    let (code, text) = tokio::task::spawn_blocking(move || verify(&d, true))
        .await
        .unwrap();
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("not repairing: the data dir") && text.contains("in use by a running broker"),
        "{text}"
    );
    let d = data.clone();
    let (code, text) = tokio::task::spawn_blocking(move || verify(&d, false))
        .await
        .unwrap();
    assert_eq!(code, 0, "{text}");
    b.run_until(async {}).await;
    let (code, text) = verify(&data, true);
    assert_eq!(code, 0, "stopped, the repair runs: {text}");
}
