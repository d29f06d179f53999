//! Retention: the oldest closed segments leave the log by age or by total size.

use std::path::PathBuf;

use tracing::info;

use super::log::PartitionLog;
use super::segment::{self, io, StorageError};

/// A segment retention took out of a log, its files still to delete.
#[derive(Debug)]
pub struct Expired {
    pub path: PathBuf,
    pub index: PathBuf,
    pub bytes: u64,
    pub by_age: bool,
}

impl Expired {
    /// Deletes the segment and its index (an index already gone is fine).
    pub fn remove(self) -> Result<(), StorageError> {
        super::files::forget(&self.path);
        std::fs::remove_file(&self.path).map_err(io(&self.path))?;
        let _ = std::fs::remove_file(&self.index);
        info!(path = %self.path.display(), bytes = self.bytes, by_age = self.by_age, "retention: segment deleted");
        Ok(())
    }
}

impl PartitionLog {
    /// Detaches the oldest closed segments that retention removes (older than
    /// `retention_ms` by their last record, or beyond `retention_bytes` in all), never
    /// the active one. They are gone from reads at once; the caller deletes their files
    /// with [`Expired::remove`], off its hot path.
    pub fn expire(
        &mut self,
        now_ms: u64,
        retention_ms: Option<u64>,
        retention_bytes: Option<u64>,
    ) -> Vec<Expired> {
        let mut out = Vec::new();
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            let too_old =
                retention_ms.is_some_and(|r| now_ms.saturating_sub(oldest.last_timestamp) > r);
            let too_big = retention_bytes.is_some_and(|r| self.size_bytes() > r);
            if !too_old && !too_big {
                break;
            }
            let seg = self.segments.remove(0);
            out.push(Expired {
                index: segment::index_path(&self.dir, seg.base),
                path: seg.path,
                bytes: seg.size,
                by_age: too_old,
            });
        }
        if !out.is_empty() {
            let start = self.start_offset();
            self.damage
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|d| d.next > start);
        }
        out
    }

    /// [`PartitionLog::expire`] with the files deleted here; returns how many went.
    pub fn apply_retention(
        &mut self,
        now_ms: u64,
        retention_ms: Option<u64>,
        retention_bytes: Option<u64>,
    ) -> Result<usize, StorageError> {
        let expired = self.expire(now_ms, retention_ms, retention_bytes);
        let n = expired.len();
        for e in expired {
            e.remove()?;
        }
        Ok(n)
    }
}
