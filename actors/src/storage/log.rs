//! [`PartitionLog`]: one partition's segments, oldest first; only the last is written.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use switchyard_codecs::record::{self, Record};
use switchyard_codecs::Labels;
use tracing::{info, warn};

use super::segment::{self, io, StorageError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is closed and a new one started when the next batch would take it
    /// past this size (a batch is never split, so one batch may pass it).
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
    /// Bytes cut from the end of the last segment (a torn or corrupt tail).
    pub truncated_bytes: u64,
    pub rebuilt_indexes: usize,
    pub next_offset: u64,
}

#[derive(Debug)]
struct Segment {
    base: u64,
    path: PathBuf,
    file: File,
    size: u64,
    index: Vec<(u32, u32)>,
    last_indexed: Option<u64>,
    last_timestamp: u64,
}

/// A message to append: what the log does not assign itself.
#[derive(Debug, Clone)]
pub struct Append {
    pub timestamp_ms: u64,
    pub key: Option<Bytes>,
    pub labels: Labels,
    pub value: Bytes,
}

#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    cfg: LogConfig,
    /// Oldest first; the last one is active.
    segments: Vec<Segment>,
    index_file: File,
    next_offset: u64,
    /// Whether a roll waits for the closed segment's `fdatasync` (see [`RollSync`]).
    roll_sync: RollSync,
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

impl Segment {
    fn view(&self) -> segment::View<'_> {
        segment::View {
            path: &self.path,
            file: &self.file,
            size: self.size,
            base: self.base,
            index: &self.index,
        }
    }
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`: trusts closed segments whose index is
    /// sound (rebuilding it otherwise), re-reads the active segment, cuts a torn or
    /// corrupt tail, and continues the offsets.
    pub fn open(dir: &Path, cfg: LogConfig) -> Result<(PartitionLog, Recovery), StorageError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut bases: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
            .collect();
        bases.sort_unstable();
        if bases.is_empty() {
            bases.push(0);
        }
        let mut rec = Recovery {
            segments: bases.len(),
            ..Recovery::default()
        };
        let mut segments = Vec::with_capacity(bases.len());
        let last = bases.len() - 1;
        for (i, &base) in bases.iter().enumerate() {
            let path = segment::log_path(dir, base);
            let file = segment::open_log(&path)?;
            let size = file.metadata().map_err(io(&path))?.len();
            let idx_path = segment::index_path(dir, base);
            let stored = segment::read_index(&idx_path)
                .filter(|ix| ix.last().is_none_or(|(_, p)| u64::from(*p) < size));
            let (index, last_timestamp, size) = match stored {
                Some(ix) if i != last => {
                    let ts = last_timestamp(&path, &file, size, base, &ix, cfg)?;
                    (ix, ts, size)
                }
                _ => {
                    let scan =
                        segment::scan(&path, base, cfg.max_record_bytes, cfg.index_interval_bytes)?;
                    if scan.valid_len < size {
                        let cut = size - scan.valid_len;
                        warn!(path = %path.display(), truncated_bytes = cut, reason = scan.stopped.as_deref().unwrap_or(""), "cutting a torn or corrupt tail");
                        file.set_len(scan.valid_len).map_err(io(&path))?;
                        file.sync_all().map_err(io(&path))?;
                        rec.truncated_bytes += cut;
                    }
                    if i != last || segment::read_index(&idx_path).as_ref() != Some(&scan.index) {
                        segment::write_index(&idx_path, &scan.index)?;
                        if i != last {
                            rec.rebuilt_indexes += 1;
                        }
                    }
                    (scan.index, scan.last_timestamp, scan.valid_len)
                }
            };
            segments.push(Segment {
                base,
                path,
                file,
                size,
                last_indexed: index.last().map(|(_, p)| u64::from(*p)),
                index,
                last_timestamp,
            });
        }
        let active = &segments[last];
        let next_offset = match active.index.last() {
            None => active.base,
            Some(_) => {
                let recs = segment::read_from(
                    active.view(),
                    active.base + u64::from(active.index.last().map_or(0, |e| e.0)),
                    usize::MAX,
                    cfg.max_record_bytes,
                )?;
                recs.last().map_or(active.base, |r| r.offset + 1)
            }
        };
        let idx_path = segment::index_path(dir, active.base);
        let index_file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&idx_path)
            .map_err(io(&idx_path))?;
        rec.next_offset = next_offset;
        if rec.truncated_bytes > 0 || rec.rebuilt_indexes > 0 {
            info!(dir = %dir.display(), next_offset, truncated_bytes = rec.truncated_bytes, rebuilt_indexes = rec.rebuilt_indexes, "partition log recovered");
        }
        Ok((
            PartitionLog {
                roll_sync: RollSync::default(),
                dir: dir.to_path_buf(),
                cfg,
                segments,
                index_file,
                next_offset,
            },
            rec,
        ))
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

    fn active(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Appends a batch with one `write(2)` and returns the offsets it got. Not durable
    /// until [`PartitionLog::sync`].
    pub fn append(&mut self, batch: &[Append]) -> Result<Range<u64>, StorageError> {
        let first = self.next_offset;
        let mut buf = BytesMut::with_capacity(batch.iter().map(|a| a.value.len() + 48).sum());
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
                return Err(StorageError::Corrupt {
                    path: self.dir.clone(),
                    position: 0,
                    reason: format!(
                        "record of {len} bytes, at most {} allowed",
                        self.cfg.max_record_bytes
                    ),
                });
            }
            marks.push((rec.offset, buf.len(), a.timestamp_ms));
            record::encode_ref(&rec, &mut buf).map_err(|e| StorageError::Corrupt {
                path: self.dir.clone(),
                position: 0,
                reason: e.to_string(),
            })?;
        }
        if buf.is_empty() {
            return Ok(first..first);
        }
        if self.active().size > 0 && self.active().size + buf.len() as u64 > self.cfg.segment_bytes
        {
            self.roll()?;
        }
        let interval = self.cfg.index_interval_bytes;
        let seg = self.active();
        let mut new_index = Vec::new();
        for (offset, at, _) in &marks {
            let pos = seg.size + *at as u64;
            if seg.last_indexed.is_none_or(|p| pos - p >= interval) {
                new_index.push(((offset - seg.base) as u32, pos as u32));
                seg.last_indexed = Some(pos);
            }
        }
        seg.file.write_all(&buf).map_err(io(&seg.path))?;
        seg.size += buf.len() as u64;
        seg.last_timestamp = marks.last().map_or(seg.last_timestamp, |m| m.2);
        seg.index.extend_from_slice(&new_index);
        let mut ib = Vec::with_capacity(new_index.len() * 8);
        for (rel, pos) in &new_index {
            ib.extend_from_slice(&rel.to_be_bytes());
            ib.extend_from_slice(&pos.to_be_bytes());
        }
        let base = seg.base;
        self.index_file
            .write_all(&ib)
            .map_err(io(&segment::index_path(&self.dir, base)))?;
        self.next_offset = first + batch.len() as u64;
        Ok(first..self.next_offset)
    }

    /// A handle on the active segment's file, so its `fdatasync` can run off the actor
    /// (the descriptor is duplicated; the data it syncs is the same file's).
    pub fn sync_handle(&mut self) -> Result<File, StorageError> {
        let seg = self.active();
        seg.file.try_clone().map_err(io(&seg.path))
    }

    /// Makes everything appended so far durable (`fdatasync`).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        let seg = self.active();
        seg.file.sync_data().map_err(io(&seg.path))
    }

    /// How a roll syncs the segment it closes.
    pub fn set_roll_sync(&mut self, how: RollSync) {
        self.roll_sync = how;
    }

    /// Closes the active segment (synced, now or in the background) and starts a new
    /// one at the next offset.
    fn roll(&mut self) -> Result<(), StorageError> {
        match self.roll_sync {
            RollSync::Inline => self.sync()?,
            RollSync::Background => {
                let seg = self.active();
                let (file, path) = (
                    seg.file.try_clone().map_err(io(&seg.path))?,
                    seg.path.clone(),
                );
                let job = move || {
                    if let Err(e) = file.sync_data() {
                        warn!(path = %path.display(), error = %e, "closed segment not synced");
                    }
                };
                // Without a thread to spare, the sync happens here rather than not at all.
                if let Err(e) = std::thread::Builder::new()
                    .name("segment-sync".into())
                    .spawn(job)
                {
                    warn!(error = %e, "no thread for a segment sync");
                    self.sync()?;
                }
            }
        }
        let base = self.next_offset;
        let path = segment::log_path(&self.dir, base);
        let file = segment::open_log(&path)?;
        let idx_path = segment::index_path(&self.dir, base);
        self.index_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&idx_path)
            .map_err(io(&idx_path))?;
        self.segments.push(Segment {
            base,
            path,
            file,
            size: 0,
            index: Vec::new(),
            last_indexed: None,
            last_timestamp: 0,
        });
        Ok(())
    }

    /// Records at or after `from`, up to about `max_bytes` (at least one record when
    /// any is there). `from` below the start offset reads from the start.
    pub fn read(&self, from: u64, max_bytes: usize) -> Result<Vec<Record>, StorageError> {
        let from = from.max(self.start_offset());
        let i = self
            .segments
            .partition_point(|s| s.base <= from)
            .saturating_sub(1);
        let mut out = Vec::new();
        let mut budget = max_bytes;
        for seg in &self.segments[i..] {
            let recs = segment::read_from(seg.view(), from, budget, self.cfg.max_record_bytes)?;
            let used: usize = recs.iter().map(record::encoded_len).sum();
            out.extend(recs);
            budget = budget.saturating_sub(used);
            if budget == 0 {
                break;
            }
        }
        Ok(out)
    }

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
        std::fs::remove_file(&self.path).map_err(io(&self.path))?;
        let _ = std::fs::remove_file(&self.index);
        info!(path = %self.path.display(), bytes = self.bytes, by_age = self.by_age, "retention: segment deleted");
        Ok(())
    }
}

/// The timestamp of the last record of a closed segment, read from its last index entry.
fn last_timestamp(
    path: &Path,
    file: &File,
    size: u64,
    base: u64,
    index: &[(u32, u32)],
    cfg: LogConfig,
) -> Result<u64, StorageError> {
    let Some((rel, _)) = index.last() else {
        return Ok(0);
    };
    let recs = segment::read_from(
        segment::View {
            path,
            file,
            size,
            base,
            index,
        },
        base + u64::from(*rel),
        usize::MAX,
        cfg.max_record_bytes,
    )?;
    Ok(recs.last().map_or(0, |r| r.timestamp_ms))
}
