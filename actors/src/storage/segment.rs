//! One segment: `<base offset>.log` holding records back to back, and
//! `<base offset>.index`, a sparse index of (offset - base, file position) pairs of
//! 8 bytes each, one every `index_interval_bytes` of log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use switchyard_codecs::record::{self, Record};

/// A storage failure, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: record at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Opens (or creates) a segment's log for reading and appending.
pub fn open_log(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(io(path))
}

pub fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

/// What a scan of a segment's records found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Bytes of whole, valid records from the start.
    pub valid_len: u64,
    pub index: Vec<(u32, u32)>,
    pub last_offset: Option<u64>,
    pub last_timestamp: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<String>,
}

/// Reads every record of `path` from the start, stopping at the first torn or corrupt
/// one, and builds the index on the way.
pub fn scan(
    path: &Path,
    base: u64,
    max_record: usize,
    interval: u64,
) -> Result<Scan, StorageError> {
    let data = std::fs::read(path).map_err(io(path))?;
    let mut out = Scan::default();
    let mut pos = 0usize;
    let mut last_indexed: Option<u64> = None;
    while pos < data.len() {
        match record::check(&data[pos..], max_record) {
            Ok(Some(n)) => {
                let frame = &data[pos..pos + n];
                let Some(offset) = record::offset_of(frame) else {
                    break;
                };
                if last_indexed.is_none_or(|p| pos as u64 - p >= interval) {
                    out.index.push(((offset - base) as u32, pos as u32));
                    last_indexed = Some(pos as u64);
                }
                out.last_offset = Some(offset);
                out.last_timestamp = frame
                    .get(16..24)
                    .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
                pos += n;
            }
            Ok(None) => {
                out.stopped = Some("torn record at the end".into());
                break;
            }
            Err(e) => {
                out.stopped = Some(e.to_string());
                break;
            }
        }
    }
    out.valid_len = pos as u64;
    Ok(out)
}

pub fn read_index(path: &Path) -> Option<Vec<(u32, u32)>> {
    let data = std::fs::read(path).ok()?;
    if data.len() % 8 != 0 {
        return None;
    }
    Some(
        data.chunks_exact(8)
            .map(|c| {
                (
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                    u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect(),
    )
}

pub fn write_index(path: &Path, index: &[(u32, u32)]) -> Result<File, StorageError> {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io(path))?;
    let mut buf = Vec::with_capacity(index.len() * 8);
    for (rel, pos) in index {
        buf.extend_from_slice(&rel.to_be_bytes());
        buf.extend_from_slice(&pos.to_be_bytes());
    }
    f.write_all(&buf).map_err(io(path))?;
    Ok(f)
}

/// A segment as a reader sees it.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub path: &'a Path,
    pub file: &'a File,
    pub size: u64,
    pub base: u64,
    pub index: &'a [(u32, u32)],
}

/// Reads the records of a segment at or after `from`, starting at the index entry
/// before it, until `max_bytes` (at least one record).
pub fn read_from(
    seg: View<'_>,
    from: u64,
    max_bytes: usize,
    max_record: usize,
) -> Result<Vec<Record>, StorageError> {
    let View {
        path,
        file,
        size,
        base,
        index,
    } = seg;
    let rel = from.saturating_sub(base);
    let start = match index.partition_point(|(r, _)| u64::from(*r) <= rel) {
        0 => 0,
        i => u64::from(index[i - 1].1),
    };
    let mut pos = start;
    let mut out = Vec::new();
    let mut taken = 0usize;
    while pos < size && taken < max_bytes {
        let window = max_bytes.min(4 << 20).max(max_record);
        let want = ((size - pos) as usize).min(window);
        let mut buf = BytesMut::zeroed(want);
        file.read_exact_at(&mut buf, pos).map_err(io(path))?;
        let buf: Bytes = buf.freeze();
        let mut at = 0usize;
        let mut progressed = false;
        while at < buf.len() && taken < max_bytes {
            match record::check(&buf[at..], max_record) {
                Ok(Some(n)) => {
                    let rec = record::parse(buf.slice(at..at + n)).map_err(|e| {
                        StorageError::Corrupt {
                            path: path.to_path_buf(),
                            position: pos + at as u64,
                            reason: e.to_string(),
                        }
                    })?;
                    at += n;
                    progressed = true;
                    if rec.offset >= from {
                        taken += n;
                        out.push(rec);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(StorageError::Corrupt {
                        path: path.to_path_buf(),
                        position: pos + at as u64,
                        reason: e.to_string(),
                    })
                }
            }
        }
        if !progressed {
            return Err(StorageError::Corrupt {
                path: path.to_path_buf(),
                position: pos,
                reason: "record larger than the read window".into(),
            });
        }
        pos += at as u64;
    }
    Ok(out)
}
