//! A real full disk: a small tmpfs filled by appends. Publishes are refused while it is
//! full, nothing torn is left behind, and appends succeed again once space is freed,
//! without reopening the log. Needs root to mount; skipped with a message elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use switchyard_actors::storage::log::Append;
use switchyard_actors::storage::{LogConfig, PartitionLog};
use switchyard_codecs::Labels;

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Option<Mount> {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(at.to_path_buf()))
}

fn rec(i: u64) -> Append {
    Append {
        timestamp_ms: i,
        key: None,
        labels: Labels::new(),
        value: Bytes::from(format!("{i:08}{}", "v".repeat(1000))),
    }
}

#[test]
fn a_full_disk_refuses_appends_then_recovers_when_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = mount_tmpfs(dir.path(), "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; 512 << 10]).unwrap();
    let cfg = LogConfig {
        segment_bytes: 256 << 10,
        max_record_bytes: 1 << 20,
        index_interval_bytes: 4096,
    };
    let part = dir.path().join("t").join("0");
    let (mut log, _) = PartitionLog::open(&part, cfg).unwrap();
    let mut acked = 0u64;
    let err = loop {
        // Batches of 7 records, so a batch is often cut by the full disk mid-way.
        let batch: Vec<Append> = (acked..acked + 7).map(rec).collect();
        match log.append(&batch) {
            Ok(r) => acked = r.end,
            Err(e) => break e,
        }
        assert!(acked < 100_000, "the disk never filled");
    };
    assert!(err.to_string().contains("No space left"), "{err}");
    // Single records may still fit where the batch did not; then none does.
    while let Ok(r) = log.append(&[rec(acked)]) {
        acked = r.end;
    }
    for _ in 0..5 {
        assert!(log.append(&[rec(acked)]).is_err());
    }
    assert_eq!(log.read(0, usize::MAX).unwrap().len() as u64, acked);

    std::fs::remove_file(&filler).unwrap();
    let more: Vec<Append> = (acked..acked + 20).map(rec).collect();
    assert_eq!(log.append(&more).unwrap(), acked..acked + 20);
    acked += 20;
    drop(log);

    let (log, recovery) = PartitionLog::open(&part, cfg).unwrap();
    assert!(recovery.damage.is_empty(), "{recovery:?}");
    assert_eq!(recovery.truncated_bytes, 0, "{recovery:?}");
    let all = log.read(0, usize::MAX).unwrap();
    assert_eq!(all.len() as u64, acked);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
        assert!(r.value.starts_with(format!("{i:08}").as_bytes()));
    }
}
