//! `switchyard backup` and `switchyard restore`.
//!
//! A backup is a client of the broker port (TLS and logins as every client command): it
//! snapshots each partition's first retained offset and its synced high watermark, reads
//! that range through a subscription, and writes the records, with their offsets,
//! timestamps, keys, labels and values, into a dir laid out as a data dir (segments,
//! indexes, `topic.json`, `groups.json`) with the storage's own writer, so `switchyard
//! verify --dir` checks it. `backup.json` ([`manifest`]) is written last.
//!
//! - [`command`]: the two commands' options, progress and summary lines.
//! - [`manifest`]: `backup.json`, its checks, written atomically.
//! - [`take`]: the backup itself.
//! - [`restore`]: into a stopped broker's data dir (checked, copied, synced).
//! - [`online`]: as new topics into a running broker, through the protocol.

pub mod command;
pub mod manifest;
pub mod online;
pub mod restore;
pub mod take;

use std::path::{Path, PathBuf};

use switchyard_actors::storage::{LockError, StorageError};

use crate::client::ClientError;

pub use manifest::Manifest;
pub use online::restore_online;
pub use restore::{restore_dir, RestoreOptions};
pub use take::{backup, BackupOptions};

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Lock(#[from] LockError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no {}: not a finished backup (a backup that stopped midway has none)", dir.display(), manifest::MANIFEST)]
    NotABackup { dir: PathBuf },
    #[error("{}: {why}", path.display())]
    BadManifest { path: PathBuf, why: String },
    /// The backup dir's files do not match its manifest, or fail the storage check.
    #[error("the backup in {} does not check out: {why}", dir.display())]
    Damaged { dir: PathBuf, why: String },
    /// What the user asked for is refused (before anything is written).
    #[error("{0}")]
    Refused(String),
}

impl BackupError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> BackupError {
        BackupError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Makes the entries of `dir` (files created or renamed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BackupError::io(dir, e))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checks a backup dir before anything is restored from it: its manifest, then every
/// record's CRC, offset and index ([`switchyard_actors::storage::verify::verify_dir`]),
/// and that each partition holds exactly the records the manifest names.
pub fn check_backup(
    dir: &Path,
    cfg: switchyard_actors::storage::LogConfig,
) -> Result<Manifest, BackupError> {
    let m = Manifest::read(dir)?;
    let reports = switchyard_actors::storage::verify::verify_dir(dir, cfg, false)?;
    let damaged = |why: String| BackupError::Damaged {
        dir: dir.to_path_buf(),
        why,
    };
    for r in &reports {
        if !r.is_clean() {
            return Err(damaged(format!(
                "{}/{} fails the storage check (run `switchyard verify --dir {}`)",
                r.topic,
                r.partition,
                dir.display()
            )));
        }
    }
    for t in &m.topics {
        for p in &t.partitions {
            let found = reports
                .iter()
                .find(|r| r.topic == t.name && r.partition == p.partition.to_string());
            match found {
                Some(r) if r.records == p.records => {}
                Some(r) => {
                    return Err(damaged(format!(
                        "{}/{} holds {} records, the manifest says {}",
                        t.name, p.partition, r.records, p.records
                    )))
                }
                None => return Err(damaged(format!("{}/{} is missing", t.name, p.partition))),
            }
        }
    }
    if reports.len() != m.partitions() {
        return Err(damaged(format!(
            "{} partitions on disk, the manifest names {}",
            reports.len(),
            m.partitions()
        )));
    }
    Ok(m)
}
