//! Reading a segment's records from its start in bounded memory, telling a torn tail
//! (bytes at the very end that are not a whole record, with nothing valid after them)
//! from damage (bad bytes, or missing offsets, followed by valid records).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use switchyard_codecs::record;

use super::segment::{io, StorageError};

/// Bytes read at a time; a record longer than this is read whole.
const CHUNK: usize = 1 << 20;
/// Records take at least this many bytes, so a gap of `n` bytes hides at most
/// `n / MIN_RECORD + 1` offsets: a cheap filter before a candidate's CRC is computed.
const MIN_RECORD: u64 = 34;

/// Offsets a log cannot serve, and where in a segment they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The offsets lost: `first` up to, not including, `next` (equal when only bytes
    /// were bad and no offset is missing).
    pub first: u64,
    pub next: u64,
    /// The segment (its base offset) and the bytes the damage covers there; `end` is
    /// where the next readable record starts (`pos == end`: offsets are missing, no
    /// bytes are bad).
    pub segment: u64,
    pub pos: u64,
    pub end: u64,
    pub reason: String,
}

/// What a scan of a segment found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Where the last whole, valid record ends.
    pub valid_len: u64,
    pub index: Vec<(u32, u32)>,
    pub first_offset: Option<u64>,
    pub last_offset: Option<u64>,
    pub last_timestamp: u64,
    pub records: u64,
    /// Damaged ranges followed by valid records, in order.
    pub damage: Vec<Damage>,
    /// Why the bytes after `valid_len` are not records, when there are such bytes.
    pub torn: Option<String>,
}

/// A window on a file that refills as the scan moves: memory stays at about one chunk
/// (or one record, when a record is larger).
struct Window<'a> {
    file: &'a File,
    path: &'a Path,
    size: u64,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> Window<'a> {
    fn new(file: &'a File, path: &'a Path, size: u64) -> Self {
        Window {
            file,
            path,
            size,
            start: 0,
            buf: Vec::new(),
        }
    }

    /// Up to `n` bytes from `at` (fewer only at the end of the file).
    fn get(&mut self, at: u64, n: usize) -> Result<&[u8], StorageError> {
        let end = (at + n as u64).min(self.size);
        if at < self.start || end > self.start + self.buf.len() as u64 {
            let want = ((self.size - at) as usize).min(n.max(CHUNK));
            self.buf.resize(want, 0);
            self.file
                .read_exact_at(&mut self.buf, at)
                .map_err(io(self.path))?;
            self.start = at;
        }
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + (end - at) as usize])
    }
}

/// [`scan`] with a log's record limit and index interval.
pub fn scan_segment(
    path: &Path,
    file: &File,
    size: u64,
    base: u64,
    cfg: &super::log::LogConfig,
) -> Result<Scan, StorageError> {
    scan(
        path,
        file,
        size,
        base,
        cfg.max_record_bytes,
        cfg.index_interval_bytes,
    )
}

/// Reads every record of the segment `file` (based at `base`, `size` bytes), builds
/// its index, and finds its damage and torn tail. Memory: one chunk, or one record.
pub fn scan(
    path: &Path,
    file: &File,
    size: u64,
    base: u64,
    max_record: usize,
    interval: u64,
) -> Result<Scan, StorageError> {
    let mut w = Window::new(file, path, size);
    let mut out = Scan::default();
    let mut pos = 0u64;
    let mut last_indexed: Option<u64> = None;
    let mut force_index = false;
    let mut expected = base;
    while pos < size {
        // A length that runs past the end may be a damaged length field with valid
        // records after it: only when none follows is it a torn tail.
        let (bad, n) = match probe(&mut w, pos, max_record, expected)? {
            Probe::Record(n) => (None, n),
            Probe::Partial => (Some("incomplete record at the end".to_string()), 0),
            Probe::Bad(reason) => (Some(reason), 0),
        };
        if let Some(reason) = bad {
            match resync(&mut w, pos + 1, max_record, expected)? {
                Some((next, offset)) => {
                    out.damage.push(Damage {
                        first: expected,
                        next: offset,
                        segment: base,
                        pos,
                        end: next,
                        reason,
                    });
                    pos = next;
                    expected = offset;
                    force_index = true;
                    continue;
                }
                None => {
                    out.torn = Some(reason);
                    break;
                }
            }
        }
        let head = w.get(pos, 24)?;
        let offset = record::offset_of(head).unwrap_or(expected);
        let ts = head
            .get(16..24)
            .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
        if offset > expected {
            out.damage.push(Damage {
                first: expected,
                next: offset,
                segment: base,
                pos,
                end: pos,
                reason: format!("offsets {expected}..{} missing", offset - 1),
            });
            force_index = true;
        }
        if force_index || last_indexed.is_none_or(|p| pos - p >= interval) {
            out.index.push(((offset - base) as u32, pos as u32));
            last_indexed = Some(pos);
            force_index = false;
        }
        out.first_offset.get_or_insert(offset);
        out.last_offset = Some(offset);
        out.last_timestamp = ts;
        out.records += 1;
        expected = offset + 1;
        pos += n as u64;
        out.valid_len = pos;
    }
    Ok(out)
}

enum Probe {
    Record(usize),
    /// The file ends inside the record.
    Partial,
    Bad(String),
}

/// Whether a valid record whose offset is at least `expected` starts at `pos`.
fn probe(
    w: &mut Window<'_>,
    pos: u64,
    max_record: usize,
    expected: u64,
) -> Result<Probe, StorageError> {
    let head = w.get(pos, record::HEADER + 16)?;
    if head.len() < 4 {
        return Ok(Probe::Partial);
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let whole = w.get(pos, (len + 4).min(max_record.saturating_add(1)))?;
    match record::check(whole, max_record) {
        Ok(Some(n)) => match record::offset_of(whole) {
            Some(o) if o >= expected => Ok(Probe::Record(n)),
            Some(o) => Ok(Probe::Bad(format!(
                "offset {o} where {expected} or later was expected"
            ))),
            None => Ok(Probe::Bad("record without an offset".into())),
        },
        Ok(None) => Ok(Probe::Partial),
        Err(e) => Ok(Probe::Bad(e.to_string())),
    }
}

/// The next position after `from` where a valid record with a plausible offset starts,
/// and its offset; `None` when no valid record follows.
pub(crate) fn resync_at(
    path: &Path,
    file: &File,
    size: u64,
    from: u64,
    max_record: usize,
    expected: u64,
) -> Result<Option<(u64, u64)>, StorageError> {
    let mut w = Window::new(file, path, size);
    resync(&mut w, from, max_record, expected)
}

fn resync(
    w: &mut Window<'_>,
    from: u64,
    max_record: usize,
    expected: u64,
) -> Result<Option<(u64, u64)>, StorageError> {
    let mut at = from;
    while at + (record::HEADER as u64 + 16) <= w.size {
        let head = w.get(at, 16)?;
        let offset = record::offset_of(head).unwrap_or(0);
        let plausible = offset >= expected && offset - expected <= (at - from) / MIN_RECORD + 1;
        if plausible {
            if let Probe::Record(_) = probe(w, at, max_record, expected)? {
                return Ok(Some((at, offset)));
            }
        }
        at += 1;
    }
    Ok(None)
}
