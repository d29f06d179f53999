//! Opening a log: trust closed segments whose index is sound, scan the others and the
//! active one (in bounded memory), cut a torn tail of the active segment only, and
//! report, never drop, damage and offsets missing between segments.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing::{error, info, warn};

use super::durability::SyncPoint;
use super::faults::FileOps;
use super::log::{LogConfig, LogFault, PartitionLog, Recovery, RollSync, Segment};
use super::scan::{self, Damage};
use super::segment::{self, io, StorageError};

/// What a segment holds, as far as opening needs to know.
struct Opened {
    seg: Segment,
    last_offset: Option<u64>,
}

pub(super) fn open(
    dir: &Path,
    cfg: LogConfig,
    ops: FileOps,
) -> Result<(PartitionLog, Recovery), StorageError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut bases = segment::bases(dir)?;
    if bases.is_empty() {
        bases.push(0);
    }
    let mut rec = Recovery {
        segments: bases.len(),
        ..Recovery::default()
    };
    let mut fault = None;
    let last = bases.len() - 1;
    let mut opened = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let o = match (i != last).then(|| trusted(dir, base, cfg)).transpose()? {
            Some(Some(o)) => o,
            _ => scanned(dir, base, cfg, &ops, i == last, &mut rec, &mut fault)?,
        };
        opened.push(o);
    }
    for pair in opened.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let expected = a.last_offset.map_or(a.seg.base, |o| o + 1);
        if expected < b.seg.base {
            rec.damage.push(Damage {
                first: expected,
                next: b.seg.base,
                segment: a.seg.base,
                pos: a.seg.size,
                end: a.seg.size,
                reason: format!(
                    "segment {} ends before offset {expected}, the next one starts at {}",
                    a.seg.base, b.seg.base
                ),
            });
        } else if expected > b.seg.base {
            error!(dir = %dir.display(), segment = b.seg.base, overlaps_to = expected, "segments overlap");
        }
    }
    rec.damage.sort_by_key(|d| d.first);
    for d in &rec.damage {
        error!(dir = %dir.display(), first = d.first, last = d.next.saturating_sub(1), segment = d.segment, position = d.pos, reason = %d.reason, "unreadable records found at start");
    }
    let Some(active) = opened.last() else {
        return Err(StorageError::Unwritable {
            reason: "no segment".into(),
        });
    };
    let next_offset = active
        .last_offset
        .map_or(active.seg.base, |o| o + 1)
        .max(rec.damage.iter().map(|d| d.next).max().unwrap_or(0));
    let active_base = active.seg.base;
    let active_size = active.seg.size;
    let idx_path = segment::index_path(dir, active_base);
    let index_file = match OpenOptions::new().append(true).create(true).open(&idx_path) {
        Ok(f) => Some(f),
        Err(e) => {
            fault.get_or_insert(LogFault::Repair {
                reason: e.to_string(),
            });
            None
        }
    };
    rec.next_offset = next_offset;
    if rec.truncated_bytes > 0 || rec.rebuilt_indexes > 0 {
        info!(dir = %dir.display(), next_offset, truncated_bytes = rec.truncated_bytes, rebuilt_indexes = rec.rebuilt_indexes, "partition log recovered");
    }
    let log = PartitionLog {
        dir: dir.to_path_buf(),
        cfg,
        segments: opened.into_iter().map(|o| o.seg).collect(),
        index_file,
        next_offset,
        roll_sync: RollSync::default(),
        ops,
        synced: SyncPoint {
            base: active_base,
            size: active_size,
            next_offset,
        },
        fault,
        sync_failures: Arc::new(Mutex::new(Vec::new())),
        damage: Mutex::new(rec.damage.clone()),
    };
    Ok((log, rec))
}

/// A closed segment whose stored index is sound and whose last records read whole,
/// without scanning it; `None` when it must be scanned.
fn trusted(dir: &Path, base: u64, cfg: LogConfig) -> Result<Option<Opened>, StorageError> {
    let path = segment::log_path(dir, base);
    let file = segment::open_log(&path)?;
    let size = file.metadata().map_err(io(&path))?.len();
    let Some(index) = segment::read_index(&segment::index_path(dir, base)) else {
        return Ok(None);
    };
    let sound = index.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
        && index.last().is_some_and(|(_, p)| u64::from(*p) < size)
        && index.first().is_some_and(|e| *e == (0, 0));
    if !sound {
        return Ok(None);
    }
    let Some(&(rel, _)) = index.last() else {
        return Ok(None);
    };
    let view = segment::View {
        path: &path,
        file: &file,
        size,
        base,
        index: &index,
    };
    let tail = segment::read_from(
        view,
        base + u64::from(rel),
        0,
        usize::MAX,
        usize::MAX,
        cfg.max_record_bytes,
    )?;
    let Some(last) = tail.records.last() else {
        return Ok(None);
    };
    if tail.bad.is_some() {
        return Ok(None);
    }
    let (last_offset, last_timestamp) = (last.offset, last.timestamp_ms);
    drop(file);
    Ok(Some(Opened {
        seg: Segment {
            base,
            path,
            size,
            last_indexed: index.last().map(|(_, p)| u64::from(*p)),
            index,
            last_timestamp,
            synced: true,
            file: None,
        },
        last_offset: Some(last_offset),
    }))
}

/// A segment read whole: its index rebuilt, its damage found; the active segment's
/// torn tail cut (a closed segment keeps its bytes: what it misses shows as a gap).
fn scanned(
    dir: &Path,
    base: u64,
    cfg: LogConfig,
    ops: &FileOps,
    active: bool,
    rec: &mut Recovery,
    fault: &mut Option<LogFault>,
) -> Result<Opened, StorageError> {
    let path = segment::log_path(dir, base);
    let file = segment::open_log(&path)?;
    let size = file.metadata().map_err(io(&path))?.len();
    let sc = scan::scan_segment(&path, &file, size, base, &cfg)?;
    rec.damage.extend(sc.damage);
    if let Some(why) = &sc.torn {
        let cut = size - sc.valid_len;
        if active {
            warn!(path = %path.display(), truncated_bytes = cut, reason = %why, "cutting a torn tail");
            rec.truncated_bytes += cut;
            let r = ops
                .set_len(&file, sc.valid_len)
                .and_then(|()| ops.sync_data(&file));
            if let Err(e) = r {
                fault.get_or_insert(LogFault::Repair {
                    reason: e.to_string(),
                });
            }
        } else {
            warn!(path = %path.display(), bytes = cut, reason = %why, "closed segment ends in bytes that are not records; kept");
        }
    }
    let idx_path = segment::index_path(dir, base);
    if !active || segment::read_index(&idx_path).as_ref() != Some(&sc.index) {
        if let Err(e) = segment::write_index(ops, &idx_path, &sc.index) {
            warn!(path = %idx_path.display(), error = %e, "index not rewritten; kept in memory");
            if active {
                fault.get_or_insert(LogFault::Repair {
                    reason: e.client_text(),
                });
            }
        } else if !active {
            rec.rebuilt_indexes += 1;
        }
    }
    Ok(Opened {
        seg: Segment {
            base,
            path,
            file: active.then_some(file),
            size: sc.valid_len,
            last_indexed: sc.index.last().map(|(_, p)| u64::from(*p)),
            index: sc.index,
            last_timestamp: sc.last_timestamp,
            synced: true,
        },
        last_offset: sc.last_offset,
    })
}
