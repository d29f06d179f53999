//! Closed segments keep no file open: a read opens one through a small process-wide LRU
//! of open files ([`set_open_files_limit`], `storage.max_open_segments`), so thousands
//! of partitions cost two descriptors each (the active segment and its index), not one
//! per segment.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::segment::{io, StorageError};

static LIMIT: AtomicUsize = AtomicUsize::new(256);

/// How many closed segments' files stay open at most, across all partitions.
pub fn set_open_files_limit(n: usize) {
    LIMIT.store(n.max(1), Ordering::Relaxed);
}

#[derive(Debug, Default)]
struct Lru {
    files: HashMap<PathBuf, (Arc<File>, u64)>,
    tick: u64,
}

fn lru() -> &'static Mutex<Lru> {
    static CACHE: OnceLock<Mutex<Lru>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, Lru> {
    lru().lock().unwrap_or_else(|p| p.into_inner())
}

/// A closed segment's file, opened read-only or taken from the cache.
pub fn cached(path: &Path) -> Result<Arc<File>, StorageError> {
    let mut c = lock();
    c.tick += 1;
    let tick = c.tick;
    if let Some((f, t)) = c.files.get_mut(path) {
        *t = tick;
        return Ok(f.clone());
    }
    let f = Arc::new(File::open(path).map_err(io(path))?);
    if c.files.len() >= LIMIT.load(Ordering::Relaxed) {
        if let Some(old) = c
            .files
            .iter()
            .min_by_key(|(_, (_, t))| *t)
            .map(|(p, _)| p.clone())
        {
            c.files.remove(&old);
        }
    }
    c.files.insert(path.to_path_buf(), (f.clone(), tick));
    Ok(f)
}

/// Drops the cached descriptor of a file being deleted, so its space is freed.
pub fn forget(path: &Path) {
    lock().files.remove(path);
}

/// How many closed segments' files are open now.
pub fn open_count() -> usize {
    lock().files.len()
}

/// A segment's file: the active segment's own, or a closed one's from the cache.
#[derive(Debug)]
pub enum SegFile<'a> {
    Own(&'a File),
    Cached(Arc<File>),
}

impl Deref for SegFile<'_> {
    type Target = File;

    fn deref(&self) -> &File {
        match self {
            SegFile::Own(f) => f,
            SegFile::Cached(f) => f,
        }
    }
}
