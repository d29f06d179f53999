//! `switchyard verify`: an offline check of a data dir (a stopped broker's): every
//! record's CRC, every offset, every index. With `repair`, indexes are rebuilt and bad
//! byte ranges are moved out of their segments into `<partition>/quarantine/`, keeping
//! every readable record at its offset (the lost offsets stay a reported gap).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::faults::FileOps;
use super::log::LogConfig;
use super::scan::{self, Damage};
use super::segment::{self, io, StorageError};

/// What a check of one partition found (and mended).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    pub topic: String,
    pub partition: String,
    pub segments: usize,
    pub records: u64,
    /// Damaged ranges and offsets missing between segments.
    pub damage: Vec<Damage>,
    /// Bytes at the end of a segment that are not records.
    pub torn_bytes: u64,
    /// Index files that did not match their segment.
    pub bad_indexes: usize,
    /// With repair: files rewritten and byte ranges quarantined.
    pub repaired: usize,
}

impl PartitionReport {
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty() && self.torn_bytes == 0 && self.bad_indexes == 0
    }
}

/// Checks every partition under `dir` (`<topic>/<partition>/`).
pub fn verify_dir(
    dir: &Path,
    cfg: LogConfig,
    repair: bool,
) -> Result<Vec<PartitionReport>, StorageError> {
    let mut out = Vec::new();
    for topic in sorted_dirs(dir)? {
        let tname = file_name(&topic);
        if tname.starts_with('.') {
            continue;
        }
        let mut parts: Vec<(u32, PathBuf)> = sorted_dirs(&topic)?
            .into_iter()
            .filter_map(|p| Some((file_name(&p).parse().ok()?, p)))
            .collect();
        parts.sort();
        for (n, p) in parts {
            let mut r = verify_partition(&p, cfg, repair)?;
            r.topic = tname.clone();
            r.partition = n.to_string();
            out.push(r);
        }
    }
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

/// Checks one partition's segments, in offset order.
pub fn verify_partition(
    dir: &Path,
    cfg: LogConfig,
    repair: bool,
) -> Result<PartitionReport, StorageError> {
    let bases = segment::bases(dir)?;
    let mut r = PartitionReport {
        segments: bases.len(),
        ..PartitionReport::default()
    };
    let mut expected: Option<u64> = None;
    for base in bases {
        let path = segment::log_path(dir, base);
        let (file, size, sc) = open_scan(&path, base, &cfg)?;
        if let Some(e) = expected.filter(|e| *e < base) {
            r.damage.push(Damage {
                first: e,
                next: base,
                segment: base,
                pos: 0,
                end: 0,
                reason: format!("offsets {e}..{} missing between segments", base - 1),
            });
        }
        expected = Some(sc.last_offset.map_or(base, |o| o + 1).max(base));
        r.records += sc.records;
        r.torn_bytes += size - sc.valid_len;
        let idx = segment::index_path(dir, base);
        let index_ok = segment::read_index(&idx).as_ref() == Some(&sc.index);
        if !index_ok {
            r.bad_indexes += 1;
        }
        let bad: Vec<(u64, u64)> = sc
            .damage
            .iter()
            .filter(|d| d.end > d.pos)
            .map(|d| (d.pos, d.end))
            .chain((sc.valid_len < size).then_some((sc.valid_len, size)))
            .collect();
        r.damage.extend(sc.damage);
        if repair {
            if !bad.is_empty() {
                quarantine(dir, base, &path, &file, size, &bad)?;
                r.repaired += 1;
            }
            if !bad.is_empty() || !index_ok {
                // Positions moved with the bytes taken out: index the file as it is now.
                let (_, _, sc) = open_scan(&path, base, &cfg)?;
                segment::write_index(&FileOps::default(), &idx, &sc.index)?;
                r.repaired += usize::from(!index_ok);
            }
        }
    }
    Ok(r)
}

/// Opens a segment read-only and scans it.
fn open_scan(
    path: &Path,
    base: u64,
    cfg: &LogConfig,
) -> Result<(File, u64, scan::Scan), StorageError> {
    let file = File::open(path).map_err(io(path))?;
    let size = file.metadata().map_err(io(path))?.len();
    let sc = scan::scan_segment(path, &file, size, base, cfg)?;
    Ok((file, size, sc))
}

/// Moves the byte ranges `bad` of a segment into `quarantine/<base>-<pos>.bin` and
/// replaces the segment (written aside, synced, renamed) with the bytes that remain.
fn quarantine(
    dir: &Path,
    base: u64,
    path: &Path,
    file: &File,
    size: u64,
    bad: &[(u64, u64)],
) -> Result<(), StorageError> {
    let qdir = dir.join("quarantine");
    std::fs::create_dir_all(&qdir).map_err(io(&qdir))?;
    let tmp = path.with_extension("log.repair");
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let mut pos = 0u64;
    for &(from, to) in bad {
        copy(file, path, pos, from, &mut out, &tmp)?;
        let q = qdir.join(format!("{base:020}-{from}.bin"));
        let mut qf = File::create(&q).map_err(io(&q))?;
        copy(file, path, from, to, &mut qf, &q)?;
        qf.sync_all().map_err(io(&q))?;
        pos = to;
    }
    copy(file, path, pos, size, &mut out, &tmp)?;
    out.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn copy(
    src: &File,
    src_path: &Path,
    from: u64,
    to: u64,
    dst: &mut File,
    dst_path: &Path,
) -> Result<(), StorageError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(buf.len());
        src.read_exact_at(&mut buf[..n], at).map_err(io(src_path))?;
        dst.write_all(&buf[..n]).map_err(io(dst_path))?;
        at += n as u64;
    }
    Ok(())
}
