//! [`PartitionLog`]: one partition's segments, oldest first; only the last is written.
//!
//! A failed write never leaves its bytes behind: the append is undone (the active
//! segment cut back to its last whole record, segments it opened removed) before the
//! error is returned, and if that cannot be done the log takes no appends until it can
//! ([`PartitionLog::mend`]). A failed `fdatasync` is never retried as if it had worked
//! (the kernel may have dropped the pages it could not write): the log takes no appends
//! until [`PartitionLog::mend`] has re-read, verified and rewritten (or, for a log whose
//! acks wait for syncs, cut) what the failed sync covered, and synced that.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use switchyard_codecs::record;
use switchyard_codecs::Labels;
use tracing::{error, warn};

use super::durability::SyncPoint;
use super::faults::{Faults, FileOps};
use super::files::{self, SegFile};
use super::scan::Damage;
use super::segment::{self, io, StorageError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is closed and a new one started before a record that would take it
    /// past this size; only a single record larger than this makes a larger segment.
    pub segment_bytes: u64,
    /// The largest record accepted or read.
    pub max_record_bytes: usize,
    /// One index entry per this many bytes of log.
    pub index_interval_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 << 20,
            max_record_bytes: 1 << 20,
            index_interval_bytes: 4096,
        }
    }
}

/// What opening a log found and mended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    /// Bytes cut from the end of the last segment (a torn tail: an incomplete or bad
    /// record with nothing valid after it).
    pub truncated_bytes: u64,
    pub rebuilt_indexes: usize,
    pub next_offset: u64,
    /// Offsets found unreadable (bad records followed by valid ones, or missing).
    pub damage: Vec<Damage>,
}

#[derive(Debug)]
pub(super) struct Segment {
    pub(super) base: u64,
    pub(super) path: PathBuf,
    /// Open for the active segment only; closed ones open through [`super::files`].
    pub(super) file: Option<File>,
    pub(super) size: u64,
    pub(super) index: Vec<(u32, u32)>,
    pub(super) last_indexed: Option<u64>,
    pub(super) last_timestamp: u64,
    /// False for a closed segment whose background sync failed.
    pub(super) synced: bool,
}

impl Segment {
    pub(super) fn file(&self) -> Result<SegFile<'_>, StorageError> {
        match &self.file {
            Some(f) => Ok(SegFile::Own(f)),
            None => files::cached(&self.path).map(SegFile::Cached),
        }
    }

    pub(super) fn view<'a>(&'a self, file: &'a File) -> segment::View<'a> {
        segment::View {
            path: &self.path,
            file,
            size: self.size,
            base: self.base,
            index: &self.index,
        }
    }
}

/// A message to append: what the log does not assign itself.
#[derive(Debug, Clone)]
pub struct Append {
    pub timestamp_ms: u64,
    pub key: Option<Bytes>,
    pub labels: Labels,
    pub value: Bytes,
}

/// How a roll makes the closed segment durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RollSync {
    /// Before the next append: a log whose acks promise durability needs the closed
    /// segment's last records synced before anything goes to the new one.
    #[default]
    Inline,
    /// On a thread of its own: a log that does not promise durability should not
    /// stall its appends for the tens of milliseconds a whole segment's sync takes.
    Background,
}

/// Why the log takes no appends for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LogFault {
    /// The active segment's files on disk may not match what is in memory (an undo or
    /// an index write failed): they are cut and rewritten from memory.
    Repair { reason: String },
    /// A sync failed: what it covered may not be on disk.
    Sync { reason: String },
}

#[derive(Debug)]
pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) cfg: LogConfig,
    /// Oldest first; the last one is active.
    pub(super) segments: Vec<Segment>,
    /// The active segment's index, opened for append; `None` until a repair reopens it.
    pub(super) index_file: Option<File>,
    pub(super) next_offset: u64,
    pub(super) roll_sync: RollSync,
    pub(super) ops: FileOps,
    pub(super) synced: SyncPoint,
    pub(super) fault: Option<LogFault>,
    /// Closed segments whose background sync failed, reported by the syncing thread.
    pub(super) sync_failures: Arc<Mutex<Vec<(u64, String)>>>,
    /// Unreadable ranges known so far (found at open or by reads), by first offset.
    pub(super) damage: Mutex<Vec<Damage>>,
}

/// Where an append started, to undo it.
struct Undo {
    segments: usize,
    size: u64,
    index_len: usize,
    last_indexed: Option<u64>,
    last_timestamp: u64,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`; see [`super::recover`].
    pub fn open(dir: &Path, cfg: LogConfig) -> Result<(PartitionLog, Recovery), StorageError> {
        super::recover::open(dir, cfg, FileOps::default())
    }

    /// A new, empty log in `dir` whose first record gets offset `base` (a backup of a
    /// partition whose older records retention removed keeps their offsets). Refused
    /// when `dir` already holds segments.
    pub fn create_at(
        dir: &Path,
        cfg: LogConfig,
        base: u64,
    ) -> Result<(PartitionLog, Recovery), StorageError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        if !segment::bases(dir)?.is_empty() {
            return Err(StorageError::Unwritable {
                reason: "the folder already holds segments".into(),
            });
        }
        segment::open_log(&segment::log_path(dir, base))?;
        Self::open(dir, cfg)
    }

    /// [`PartitionLog::open`] with faults planted in its file operations (tests).
    pub fn open_with_faults(
        dir: &Path,
        cfg: LogConfig,
        faults: Arc<Faults>,
    ) -> Result<(PartitionLog, Recovery), StorageError> {
        super::recover::open(dir, cfg, FileOps::with_faults(faults))
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The oldest offset still stored.
    pub fn start_offset(&self) -> u64 {
        self.segments.first().map_or(self.next_offset, |s| s.base)
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Why the log takes no appends now, if it does not.
    pub fn fault(&self) -> Option<String> {
        self.fault.as_ref().map(|f| match f {
            LogFault::Repair { reason } => format!("a failed write is being undone: {reason}"),
            LogFault::Sync { reason } => {
                format!("recovering from a failed fdatasync: {reason}")
            }
        })
    }

    /// Whether records a failed sync covered may have been acknowledged: a log that
    /// syncs a closed segment inline is one whose acks wait for syncs (`fsync =
    /// "always"`), so its unsynced records were not, and a mend cuts them.
    pub(super) fn keeps_unsynced(&self) -> bool {
        self.roll_sync == RollSync::Background
    }

    /// The unreadable ranges known so far.
    pub fn damage(&self) -> Vec<Damage> {
        self.damage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn active(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Appends a batch and returns the offsets it got; not durable until a sync. A
    /// batch is written with one `write(2)` per segment it lands in. On an error
    /// nothing of the batch stays in the log.
    pub fn append(&mut self, batch: &[Append]) -> Result<Range<u64>, StorageError> {
        self.mend(self.keeps_unsynced())?;
        let first = self.next_offset;
        let mut buf = BytesMut::with_capacity(batch.iter().map(|a| a.value.len() + 48).sum());
        // (offset, start in buf, timestamp) per record.
        let mut marks = Vec::with_capacity(batch.len());
        for (i, a) in batch.iter().enumerate() {
            let rec = record::RecordRef {
                offset: first + i as u64,
                timestamp_ms: a.timestamp_ms,
                key: a.key.as_deref(),
                labels: &a.labels,
                value: &a.value,
            };
            let len = record::encoded_len_ref(&rec);
            if len > self.cfg.max_record_bytes {
                return Err(StorageError::RecordTooLarge {
                    len,
                    max: self.cfg.max_record_bytes,
                });
            }
            marks.push((rec.offset, buf.len(), a.timestamp_ms));
            record::encode_ref(&rec, &mut buf).map_err(|e| StorageError::Unwritable {
                reason: e.to_string(),
            })?;
        }
        if buf.is_empty() {
            return Ok(first..first);
        }
        let active = &self.segments[self.segments.len() - 1];
        let undo = Undo {
            segments: self.segments.len(),
            size: active.size,
            index_len: active.index.len(),
            last_indexed: active.last_indexed,
            last_timestamp: active.last_timestamp,
        };
        if let Err(e) = self.write_batch(&buf, &marks) {
            warn!(dir = %self.dir.display(), error = %e, first, "append failed, undoing it");
            self.undo(undo);
            return Err(e);
        }
        self.next_offset = first + batch.len() as u64;
        Ok(first..self.next_offset)
    }

    /// Writes encoded records, rolling before a record that would pass `segment_bytes`.
    fn write_batch(&mut self, buf: &[u8], marks: &[(u64, usize, u64)]) -> Result<(), StorageError> {
        let end_of = |j: usize| marks.get(j + 1).map_or(buf.len(), |m| m.1);
        let limit = self.cfg.segment_bytes;
        let mut i = 0;
        while i < marks.len() {
            let start = marks[i].1;
            let size = self.active().size;
            if size > 0 && size + (end_of(i) - start) as u64 > limit {
                self.roll(marks[i].0)?;
            }
            let size = self.active().size;
            let mut j = i + 1;
            while j < marks.len() && size + (end_of(j) - start) as u64 <= limit {
                j += 1;
            }
            let end = end_of(j - 1);
            let interval = self.cfg.index_interval_bytes;
            let last = self.segments.len() - 1;
            let seg = &mut self.segments[last];
            let mut new_index = Vec::new();
            let mut last_indexed = seg.last_indexed;
            for (offset, at, _) in &marks[i..j] {
                let pos = seg.size + (*at - start) as u64;
                if last_indexed.is_none_or(|p| pos - p >= interval) {
                    new_index.push(((offset - seg.base) as u32, pos as u32));
                    last_indexed = Some(pos);
                }
            }
            self.ops
                .write_all(&*seg.file()?, &buf[start..end])
                .map_err(io(&seg.path))?;
            seg.size += (end - start) as u64;
            seg.last_timestamp = marks[j - 1].2;
            seg.last_indexed = last_indexed;
            seg.index.extend_from_slice(&new_index);
            if !new_index.is_empty() {
                let base = seg.base;
                let mut ib = Vec::with_capacity(new_index.len() * 8);
                for (rel, pos) in &new_index {
                    ib.extend_from_slice(&rel.to_be_bytes());
                    ib.extend_from_slice(&pos.to_be_bytes());
                }
                let idx = segment::index_path(&self.dir, base);
                let file = self
                    .index_file
                    .as_ref()
                    .ok_or_else(|| StorageError::Unwritable {
                        reason: "index not open".into(),
                    })?;
                self.ops.write_all(file, &ib).map_err(io(&idx))?;
            }
            i = j;
        }
        Ok(())
    }

    /// Takes back a failed append: segments it opened are removed, the active one is
    /// cut back to where the append started. What cannot be done now is left to
    /// [`PartitionLog::mend`], and no append is taken until then.
    fn undo(&mut self, u: Undo) {
        while self.segments.len() > u.segments {
            let Some(seg) = self.segments.pop() else {
                break;
            };
            let idx = segment::index_path(&self.dir, seg.base);
            let _ = std::fs::remove_file(&idx);
            if let Err(e) = std::fs::remove_file(&seg.path) {
                // A new segment at the same base later must not append after its bytes.
                let cut = seg
                    .file()
                    .and_then(|f| self.ops.set_len(&f, 0).map_err(io(&seg.path)));
                if let Err(e2) = cut {
                    self.fault = Some(LogFault::Repair {
                        reason: format!("segment {} not removed: {e}, {e2}", seg.base),
                    });
                }
            }
            self.index_file = None;
        }
        let seg = self.active();
        seg.size = u.size;
        seg.index.truncate(u.index_len);
        seg.last_indexed = u.last_indexed;
        seg.last_timestamp = u.last_timestamp;
        if let Err(e) = self.repair_files() {
            error!(dir = %self.dir.display(), error = %e, "failed append not undone yet; taking no appends");
            if self.fault.is_none() {
                self.fault = Some(LogFault::Repair {
                    reason: e.to_string(),
                });
            }
        }
    }

    /// Makes the active segment's files match memory: the log cut to its size, the
    /// index rewritten, and the index reopened for appends.
    pub(super) fn repair_files(&mut self) -> Result<(), StorageError> {
        let ops = self.ops.clone();
        let dir = self.dir.clone();
        let seg = self.active();
        if seg.file.is_none() {
            // An undone roll left the segment it closed active again.
            seg.file = Some(segment::open_log(&seg.path)?);
        }
        ops.set_len(&*seg.file()?, seg.size)
            .map_err(io(&seg.path))?;
        let idx = segment::index_path(&dir, seg.base);
        segment::write_index(&ops, &idx, &seg.index)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&idx)
            .map_err(io(&idx))?;
        self.index_file = Some(file);
        Ok(())
    }

    /// How a roll syncs the segment it closes.
    pub fn set_roll_sync(&mut self, how: RollSync) {
        self.roll_sync = how;
    }

    /// Closes the active segment (synced, now or in the background) and starts a new
    /// one at `base`, the offset of the next record to write.
    fn roll(&mut self, base: u64) -> Result<(), StorageError> {
        match self.roll_sync {
            RollSync::Inline => self.sync_inline()?,
            RollSync::Background => {
                let failures = self.sync_failures.clone();
                let ops = self.ops.clone();
                let seg = self.active();
                let (file, path, base) = (
                    seg.file()?.try_clone().map_err(io(&seg.path))?,
                    seg.path.clone(),
                    seg.base,
                );
                let job = move || {
                    if let Err(e) = ops.sync_data(&file) {
                        error!(path = %path.display(), error = %e, "closed segment not synced");
                        failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((base, e.to_string()));
                    }
                };
                // Without a thread to spare, the sync happens here rather than not at all.
                if let Err(e) = std::thread::Builder::new()
                    .name("segment-sync".into())
                    .spawn(job)
                {
                    warn!(error = %e, "no thread for a segment sync");
                    self.sync_inline()?;
                }
            }
        }
        let path = segment::log_path(&self.dir, base);
        let file = segment::open_log(&path)?;
        // The closed segment's descriptor goes; reads reopen it through the cache.
        self.active().file = None;
        let idx_path = segment::index_path(&self.dir, base);
        let index_file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&idx_path)
            .map_err(io(&idx_path))?;
        self.index_file = Some(index_file);
        self.segments.push(Segment {
            base,
            path,
            file: Some(file),
            size: 0,
            index: Vec::new(),
            last_indexed: None,
            last_timestamp: 0,
            synced: true,
        });
        self.synced = SyncPoint {
            base,
            size: 0,
            next_offset: base,
        };
        Ok(())
    }
}
