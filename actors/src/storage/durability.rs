//! Durability of a log: syncs on and off the actor, and mending after a fault (a
//! failed write not yet undone, or a failed `fdatasync`, which is never taken as done).

use std::fs::File;

use tracing::{error, info};

use super::faults::FileOps;
use super::log::{LogFault, PartitionLog};
use super::segment::{io, StorageError};

/// A point of the active segment known to be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPoint {
    pub base: u64,
    pub size: u64,
    pub next_offset: u64,
}

/// A duplicated handle on the active segment for an `fdatasync` off the actor, and the
/// point it makes durable.
#[derive(Debug)]
pub struct SyncHandle {
    file: File,
    ops: FileOps,
    pub point: SyncPoint,
}

impl SyncHandle {
    pub fn sync(&self) -> std::io::Result<()> {
        self.ops.sync_data(&self.file)
    }
}

impl PartitionLog {
    /// Clears what stops appends, if it can now: a pending repair, a failed sync of
    /// the active segment or of a closed one. `keep_unsynced`: a failed sync's records
    /// are rewritten and synced (they may have been acknowledged); otherwise they are
    /// cut (nobody was told they were stored).
    pub fn mend(&mut self, keep_unsynced: bool) -> Result<(), StorageError> {
        let failures: Vec<(u64, String)> =
            std::mem::take(&mut *self.sync_failures.lock().unwrap_or_else(|p| p.into_inner()));
        for (base, reason) in failures {
            if let Some(seg) = self.segments.iter_mut().find(|s| s.base == base) {
                seg.synced = false;
            }
            if self.fault.is_none() {
                self.fault = Some(LogFault::Sync { reason });
            }
        }
        match self.fault.clone() {
            None => Ok(()),
            Some(LogFault::Repair { reason }) => match self.repair_files() {
                Ok(()) => {
                    info!(dir = %self.dir.display(), "failed write undone; taking appends again");
                    self.fault = None;
                    Ok(())
                }
                Err(e) => Err(StorageError::Unwritable {
                    reason: format!(
                        "a failed write is being undone: {reason}; {}",
                        e.client_text()
                    ),
                }),
            },
            Some(LogFault::Sync { reason }) => match super::resync::resync(self, keep_unsynced) {
                Ok(()) => {
                    info!(dir = %self.dir.display(), next_offset = self.next_offset, "log re-verified and synced after a failed fdatasync; taking appends again");
                    self.fault = None;
                    Ok(())
                }
                Err(e) => Err(StorageError::Unwritable {
                    reason: format!(
                        "recovering from a failed fdatasync: {reason}; {}",
                        e.client_text()
                    ),
                }),
            },
        }
    }

    /// A handle to sync the active segment off the actor, and the point it covers.
    pub fn sync_handle(&mut self) -> Result<SyncHandle, StorageError> {
        let ops = self.ops.clone();
        let next_offset = self.next_offset;
        let seg = self.active();
        Ok(SyncHandle {
            file: seg.file()?.try_clone().map_err(io(&seg.path))?,
            ops,
            point: SyncPoint {
                base: seg.base,
                size: seg.size,
                next_offset,
            },
        })
    }

    /// Records the outcome of a [`SyncHandle::sync`]. A failure stops appends until
    /// [`PartitionLog::mend`]: the data it covered is never taken as durable.
    pub fn sync_done(&mut self, point: SyncPoint, result: Result<(), String>) {
        match result {
            Ok(()) if self.fault.is_none() => {
                if point.base == self.synced.base && point.size > self.synced.size {
                    self.synced = point;
                }
            }
            Ok(()) => {}
            Err(reason) => {
                error!(dir = %self.dir.display(), error = %reason, "fdatasync failed; taking no appends until the log is re-verified");
                self.fault = Some(LogFault::Sync { reason });
            }
        }
    }

    /// Makes everything appended so far durable (`fdatasync`), here and now.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.mend(self.keeps_unsynced())?;
        let h = self.sync_handle()?;
        let r = h.sync();
        let path = self.active().path.clone();
        self.sync_done(h.point, r.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        r.map_err(io(&path))
    }

    /// Syncs the active segment on this thread, for a roll.
    pub(super) fn sync_inline(&mut self) -> Result<(), StorageError> {
        let h = self.sync_handle()?;
        if let Err(e) = h.sync() {
            let path = self.active().path.clone();
            self.sync_done(h.point, Err(e.to_string()));
            return Err(io(&path)(e));
        }
        self.sync_done(h.point, Ok(()));
        Ok(())
    }

    /// The point known durable in the active segment.
    pub fn synced(&self) -> SyncPoint {
        self.synced
    }
}
