//! `switchyard restore --from DIR [--dir DATA_DIR] [--force]`: a backup copied into a
//! stopped broker's data dir.
//!
//! The backup is checked first (manifest, then every record's CRC, offset and index);
//! the data dir is locked the way a running broker locks it (refused while one runs,
//! and no broker starts on it meanwhile); a topic that exists there is refused unless
//! `force`. Each topic is copied into `.restore-<topic>` beside its place, every file
//! synced, then renamed into place and the dir synced, so a crash leaves a topic whole
//! or absent.

use std::io::Write;
use std::path::{Path, PathBuf};

use switchyard_actors::storage::{DirLock, LogConfig};

use super::{check_backup, sync_dir, BackupError, Manifest};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The backup.
    pub from: PathBuf,
    /// The stopped broker's `storage.dir`.
    pub data_dir: PathBuf,
    /// Replace topics the data dir already holds.
    pub force: bool,
    /// The storage settings the backup is checked with.
    pub log: LogConfig,
}

/// Restores every topic of the backup into `o.data_dir`; returns the backup's manifest.
pub fn restore_dir(o: &RestoreOptions, progress: &mut impl Write) -> Result<Manifest, BackupError> {
    // Locked first: a data dir in use is refused before a long check of the backup.
    let _lock = DirLock::acquire(&o.data_dir)?;
    let m = check_backup(&o.from, o.log)?;
    let _ = writeln!(
        progress,
        "restore: backup checked: {} partitions, {} records",
        m.partitions(),
        m.records()
    );
    for t in &m.topics {
        let dst = o.data_dir.join(&t.name);
        if dst.exists() && !o.force {
            return Err(BackupError::Refused(format!(
                "topic `{}` exists in {}; --force replaces it",
                t.name,
                o.data_dir.display()
            )));
        }
    }
    for t in &m.topics {
        let src = o.from.join(&t.name);
        let dst = o.data_dir.join(&t.name);
        let tmp = o.data_dir.join(format!(".restore-{}", t.name));
        remove(&tmp)?;
        copy_tree(&src, &tmp)?;
        if dst.exists() {
            // Renamed aside first, so the old topic never mixes with the new one.
            let old = o.data_dir.join(format!(".restore-old-{}", t.name));
            remove(&old)?;
            std::fs::rename(&dst, &old).map_err(|e| BackupError::io(&dst, e))?;
            std::fs::rename(&tmp, &dst).map_err(|e| BackupError::io(&dst, e))?;
            sync_dir(&o.data_dir)?;
            remove(&old)?;
        } else {
            std::fs::rename(&tmp, &dst).map_err(|e| BackupError::io(&dst, e))?;
        }
        sync_dir(&o.data_dir)?;
        let records: u64 = t.partitions.iter().map(|p| p.records).sum();
        let _ = writeln!(
            progress,
            "restore {}: {} partitions, {records} records",
            t.name,
            t.partitions.len()
        );
    }
    Ok(m)
}

fn remove(dir: &Path) -> Result<(), BackupError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackupError::io(dir, e)),
        _ => Ok(()),
    }
}

/// Copies a topic's folder (its files and partition folders), every file and folder
/// synced.
fn copy_tree(src: &Path, dst: &Path) -> Result<(), BackupError> {
    std::fs::create_dir_all(dst).map_err(|e| BackupError::io(dst, e))?;
    let entries = std::fs::read_dir(src).map_err(|e| BackupError::io(src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BackupError::io(src, e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| BackupError::io(&from, e))?;
        if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_file() {
            std::fs::copy(&from, &to).map_err(|e| BackupError::io(&from, e))?;
            std::fs::File::open(&to)
                .and_then(|f| f.sync_all())
                .map_err(|e| BackupError::io(&to, e))?;
        }
    }
    sync_dir(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_tree_whole() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("0")).unwrap();
        std::fs::write(src.path().join("topic.json"), b"{}").unwrap();
        std::fs::write(src.path().join("0").join("x.log"), b"abc").unwrap();
        copy_tree(src.path(), &dst.path().join("t")).unwrap();
        assert_eq!(std::fs::read(dst.path().join("t/0/x.log")).unwrap(), b"abc");
        assert_eq!(
            std::fs::read(dst.path().join("t/topic.json")).unwrap(),
            b"{}"
        );
        remove(&dst.path().join("t")).unwrap();
        remove(&dst.path().join("t")).unwrap();
        assert!(!dst.path().join("t").exists());
    }
}
