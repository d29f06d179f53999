//! One segment: `<base offset>.log` holding records back to back, and
//! `<base offset>.index`, a sparse index of (offset - base, file position) pairs of
//! 8 bytes each, one every `index_interval_bytes` of log.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use switchyard_codecs::record::{self, Record};

use super::faults::FileOps;

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
    /// Offsets the log cannot serve; a reader may go on after `last`.
    #[error("offsets {first} to {last} are unreadable ({reason}); read on from {next}", next = last + 1)]
    Damaged {
        first: u64,
        last: u64,
        reason: String,
    },
    /// The log takes no appends until the fault named is mended.
    #[error("not taking appends: {reason}")]
    Unwritable { reason: String },
    /// A record the log refuses to store.
    #[error("record of {len} bytes, at most {max} allowed")]
    RecordTooLarge { len: usize, max: usize },
}

impl StorageError {
    /// What a client may be told: no server paths (they go to the log only).
    pub fn client_text(&self) -> String {
        match self {
            StorageError::Io { source, .. } => source.to_string(),
            StorageError::Corrupt {
                position, reason, ..
            } => format!("record at byte {position}: {reason}"),
            other => other.to_string(),
        }
    }
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

/// The base offsets of the segments in a partition folder, oldest first.
pub fn bases(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

pub fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
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

/// Replaces the index at `path` with `index`.
pub fn write_index(ops: &FileOps, path: &Path, index: &[(u32, u32)]) -> Result<File, StorageError> {
    let f = OpenOptions::new()
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
    ops.write_all(&f, &buf).map_err(io(path))?;
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
/// before it (or at `skip_to`, a record boundary known to lie past damage before
/// `from`, when that is later), until `max_bytes` or `max_records` (at least one
/// record). A bad record
/// ends the read: the records before it are returned, and a read that starts at it is
/// stopped at, with its position and what is wrong with it.
pub fn read_from(
    seg: View<'_>,
    from: u64,
    skip_to: u64,
    max_bytes: usize,
    max_records: usize,
    max_record: usize,
) -> Result<Read, StorageError> {
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
    }
    .max(skip_to);
    let mut pos = start;
    let mut taken = 0usize;
    // What was asked for, plus the records before `from` since the index entry; a
    // record larger than that is read whole when it comes (a window of `max_record`
    // for every small read would zero and pin a megabyte per delivery).
    // A read of a few records starts small (a fetch of 10 records once read and zeroed
    // a megabyte); a record larger than the window grows it.
    let mut window = max_bytes
        .min(max_records.saturating_mul(512))
        .saturating_add(4096)
        .clamp(4096, 4 << 20);
    // Room for the records the window can hold at a small record's size, at most 1024:
    // grown one push at a time, the vector was copied again and again on every read.
    let mut out = Vec::with_capacity(max_records.min(window / 48).min(1024));
    let full = |out: &Vec<Record>, taken: usize| taken >= max_bytes || out.len() >= max_records;
    while pos < size && !full(&out, taken) {
        let want = ((size - pos) as usize).min(window);
        let buf = read_exact_at_uninit(file, want, pos).map_err(io(path))?;
        let mut at = 0usize;
        let mut bad = None;
        let mut grow = None;
        while at < buf.len() && !full(&out, taken) {
            match record::check(&buf[at..], max_record) {
                Ok(Some(n)) => match record::parse(buf.slice(at..at + n)) {
                    Ok(rec) => {
                        at += n;
                        if rec.offset >= from {
                            taken += n;
                            out.push(rec);
                        }
                    }
                    Err(e) => {
                        bad = Some(e.to_string());
                        break;
                    }
                },
                Ok(None) if at > 0 => break,
                Ok(None) => {
                    let need = buf
                        .get(..4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize + 4);
                    match need {
                        Some(n) if n > want && n <= max_record && pos + n as u64 <= size => {
                            grow = Some(n);
                        }
                        _ => bad = Some("incomplete record".to_string()),
                    }
                    break;
                }
                Err(e) => {
                    bad = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(n) = grow {
            window = n;
            continue;
        }
        if let Some(reason) = bad {
            return Ok(Read {
                records: out,
                bad: Some((pos + at as u64, reason)),
            });
        }
        pos += at as u64;
    }
    Ok(Read {
        records: out,
        bad: None,
    })
}

/// `len` bytes at `pos`, read into fresh memory that is not zeroed first: zeroing the
/// window was 6 % of the broker's instructions in a five-subscriber fan-out, for bytes
/// the read overwrites at once.
fn read_exact_at_uninit(file: &File, len: usize, pos: u64) -> std::io::Result<Bytes> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let at = pos + v.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut v), at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Bytes::from(v))
}

/// What [`read_from`] read: whole records, and the bad record it stopped at, if any.
#[derive(Debug, Default)]
pub struct Read {
    pub records: Vec<Record>,
    pub bad: Option<(u64, String)>,
}
