//! A running broker holds an exclusive `flock` on `<storage.dir>/.lock` for its whole
//! life, so that tools which must not touch a data dir in use (`switchyard restore`),
//! and a broker in another process pointed at the same dir, can tell. The lock goes with
//! the process (the kernel drops it on exit, a crash included): no stale lock file.
//!
//! Brokers in one process (the in-process tests start many, some on the same default
//! dir) share their process's lock: a lock is taken once per process and dir.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

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

/// A hold on a data dir, released when the last holder drops it.
#[derive(Debug)]
pub struct DirLock {
    _lock: Arc<Flock<File>>,
}

/// The brokers' locks this process holds, by canonical dir.
fn held() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Weak<Flock<File>>>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, Weak<Flock<File>>>>> = OnceLock::new();
    HELD.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

impl DirLock {
    /// Locks `dir` (created if missing) for a tool that must be alone on it: refused
    /// ([`LockError::InUse`]) while a broker, here or in another process, holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let canon = canonical(dir)?;
        if held().get(&canon).is_some_and(|w| w.strong_count() > 0) {
            return Err(LockError::InUse {
                dir: dir.to_path_buf(),
            });
        }
        Ok(DirLock {
            _lock: Arc::new(flock(dir, &canon)?),
        })
    }

    /// Locks `dir` for a broker: shared with the brokers of this process that hold it,
    /// refused while another process (or an [`DirLock::acquire`]) holds it.
    pub fn for_broker(dir: &Path) -> Result<DirLock, LockError> {
        let canon = canonical(dir)?;
        let mut held = held();
        if let Some(lock) = held.get(&canon).and_then(Weak::upgrade) {
            return Ok(DirLock { _lock: lock });
        }
        let lock = Arc::new(flock(dir, &canon)?);
        held.retain(|_, w| w.strong_count() > 0);
        held.insert(canon, Arc::downgrade(&lock));
        Ok(DirLock { _lock: lock })
    }
}

fn canonical(dir: &Path) -> Result<PathBuf, LockError> {
    let io = |source| LockError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    dir.canonicalize().map_err(io)
}

fn flock(dir: &Path, canon: &Path) -> Result<Flock<File>, LockError> {
    let io = |source| LockError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(canon.join(LOCK_FILE))
        .map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, Errno::EWOULDBLOCK)) => Err(LockError::InUse {
            dir: dir.to_path_buf(),
        }),
        Err((_, e)) => Err(io(std::io::Error::from(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_use(r: Result<DirLock, LockError>) -> bool {
        matches!(r, Err(LockError::InUse { .. }))
    }

    #[test]
    fn a_tool_is_refused_until_every_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        assert!(in_use(DirLock::acquire(dir.path())));
        assert!(in_use(DirLock::for_broker(dir.path())));
        drop(first);
        let a = DirLock::for_broker(dir.path()).unwrap();
        let b = DirLock::for_broker(&dir.path().join(".")).unwrap();
        assert!(in_use(DirLock::acquire(dir.path())));
        drop(a);
        assert!(in_use(DirLock::acquire(dir.path())));
        drop(b);
        assert!(DirLock::acquire(dir.path()).is_ok());
    }
}
