//! After a failed `fdatasync`: the kernel may have dropped the pages it could not
//! write, so syncing again would prove nothing. What the failed sync covered is read
//! back, verified record by record, and written again (or cut, when nobody was told it
//! was stored) before a new sync; only a sync that succeeds after that clears the fault.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use switchyard_codecs::record;
use tracing::{error, warn};

use super::durability::SyncPoint;
use super::faults::FileOps;
use super::log::PartitionLog;
use super::segment::{self, io, StorageError};

/// Bytes re-read and rewritten at a time.
const CHUNK: usize = 1 << 20;

pub(super) fn resync(log: &mut PartitionLog, keep_unsynced: bool) -> Result<(), StorageError> {
    let max_record = log.cfg.max_record_bytes;
    let n = log.segments.len();
    for seg in log.segments[..n - 1].iter_mut().filter(|s| !s.synced) {
        let file = seg.file()?;
        let valid = rewrite(&log.ops, &seg.path, &file, 0, seg.size, max_record)?;
        if valid < seg.size {
            error!(path = %seg.path.display(), from = valid, "closed segment re-read with bad records after a failed sync");
        }
        seg.synced = true;
    }
    let point = log.synced;
    let ops = log.ops.clone();
    let next_offset = log.next_offset;
    let active = log.active();
    let start = if point.base == active.base {
        point.size.min(active.size)
    } else {
        0
    };
    if keep_unsynced || start == 0 && point.base != active.base {
        let file = active.file()?;
        let valid = rewrite(&ops, &active.path, &file, start, active.size, max_record)?;
        if valid < active.size {
            warn!(path = %active.path.display(), from = valid, "records after a failed sync did not verify; cut");
            cut_active(log, valid)?;
        }
    } else {
        cut_active(log, start)?;
        log.next_offset = point.next_offset.min(next_offset);
    }
    let active = log.active();
    ops.sync_data(&*active.file()?).map_err(io(&active.path))?;
    let (base, size) = (active.base, active.size);
    log.synced = SyncPoint {
        base,
        size,
        next_offset: log.next_offset,
    };
    Ok(())
}

/// Cuts the active segment to `size` bytes, its index with it.
fn cut_active(log: &mut PartitionLog, size: u64) -> Result<(), StorageError> {
    let max_record = log.cfg.max_record_bytes;
    let seg = log.active();
    if size >= seg.size {
        return Ok(());
    }
    seg.size = size;
    seg.index.retain(|(_, p)| u64::from(*p) < size);
    seg.last_indexed = seg.index.last().map(|(_, p)| u64::from(*p));
    log.repair_files()?;
    // The next offset is one past the last record left.
    let seg = &log.segments[log.segments.len() - 1];
    let from = seg.base + seg.index.last().map_or(0, |(r, _)| u64::from(*r));
    let file = seg.file()?;
    let tail = segment::read_from(seg.view(&file), from, 0, usize::MAX, usize::MAX, max_record)?;
    log.next_offset = tail.records.last().map_or(seg.base, |r| r.offset + 1);
    Ok(())
}

/// Reads `[start, end)` back, checks it record by record, writes the valid records
/// again in place, and returns where the valid records end.
fn rewrite(
    ops: &FileOps,
    path: &std::path::Path,
    file: &std::fs::File,
    start: u64,
    end: u64,
    max_record: usize,
) -> Result<u64, StorageError> {
    // pwrite on a file opened for append appends on Linux: a plain write handle.
    let writer = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    let mut pos = start;
    let mut buf = Vec::new();
    while pos < end {
        let want = ((end - pos) as usize).min(CHUNK.max(max_record));
        buf.resize(want, 0);
        file.read_exact_at(&mut buf, pos).map_err(io(path))?;
        let mut at = 0;
        while at < buf.len() {
            match record::check(&buf[at..], max_record) {
                Ok(Some(n)) => at += n,
                Ok(None) if at > 0 => break,
                _ => {
                    ops.write_all_at(&writer, &buf[..at], pos)
                        .map_err(io(path))?;
                    return Ok(pos + at as u64);
                }
            }
        }
        ops.write_all_at(&writer, &buf[..at], pos)
            .map_err(io(path))?;
        pos += at as u64;
    }
    Ok(pos)
}
