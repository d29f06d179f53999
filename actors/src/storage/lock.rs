//! A running broker holds an exclusive `flock` on `<storage.dir>/.lock` for its whole
//! life, so that tools which must not touch a data dir in use (`switchyard restore`),
//! and a second broker pointed at the same dir, can tell. The lock goes with the process
//! (the kernel drops it on exit, a crash included): no stale lock file to clean up.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in a data dir (a dot file: never taken for a topic).
pub const LOCK_FILE: &str = ".lock";

/// Why a data dir could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the data dir {} is in use by a running broker (its {LOCK_FILE} is locked)", dir.display())]
    InUse { dir: PathBuf },
    #[error("cannot lock the data dir {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// An exclusive hold on a data dir, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
}

impl DirLock {
    /// Locks `dir` (created if missing) without waiting: [`LockError::InUse`] when
    /// another holder has it.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(DirLock { _lock: lock }),
            Err((_, Errno::EWOULDBLOCK)) => Err(LockError::InUse {
                dir: dir.to_path_buf(),
            }),
            Err((_, e)) => Err(io(std::io::Error::from(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(LockError::InUse { .. })
        ));
        drop(first);
        assert!(DirLock::acquire(dir.path()).is_ok());
    }
}
