//! The file operations a partition log makes, with faults a test can plant in them.
//!
//! Every write, `fdatasync` and truncation of a log goes through [`FileOps`]. In
//! production it carries no plan and costs one branch. A test plants faults
//! ([`Faults::plant`]): the n-th next operation of a kind fails with ENOSPC or EIO, or
//! writes only part of its bytes and then fails (a short write, as a filling disk does).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// Which operation a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A write of records or index entries.
    Write,
    /// An `fdatasync`.
    Sync,
    /// A truncation (`ftruncate`).
    Truncate,
}

/// What a planted fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails with `ENOSPC` before writing anything.
    NoSpace,
    /// Fails with `EIO`.
    Io,
    /// Writes this many bytes (at most the whole buffer), then fails with `ENOSPC`.
    Short(usize),
}

#[derive(Debug)]
struct Planted {
    op: Op,
    /// Operations of this kind to let pass first.
    skip: u32,
    fault: Fault,
    /// How many operations in a row fail once it fires.
    times: u32,
}

/// Faults planted for a log's file operations; shared with the test that plants them.
#[derive(Debug, Default)]
pub struct Faults {
    plan: Mutex<VecDeque<Planted>>,
}

impl Faults {
    pub fn new() -> Arc<Faults> {
        Arc::new(Faults::default())
    }

    /// After `skip` more operations of kind `op` pass, the next `times` fail with `fault`.
    pub fn plant(&self, op: Op, skip: u32, fault: Fault, times: u32) {
        self.lock().push_back(Planted {
            op,
            skip,
            fault,
            times,
        });
    }

    /// Drops every fault not yet fired (the disk has room again).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Planted>> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fault this operation meets, if one is due.
    fn take(&self, op: Op) -> Option<Fault> {
        let mut plan = self.lock();
        let i = plan.iter().position(|p| p.op == op)?;
        let p = &mut plan[i];
        if p.skip > 0 {
            p.skip -= 1;
            return None;
        }
        let fault = p.fault;
        p.times = p.times.saturating_sub(1);
        if p.times == 0 {
            plan.remove(i);
        }
        Some(fault)
    }
}

/// A log's way to its files: the real calls, through the faults planted if any.
#[derive(Debug, Clone, Default)]
pub struct FileOps {
    faults: Option<Arc<Faults>>,
}

fn error(fault: Fault) -> io::Error {
    match fault {
        Fault::Io => io::Error::from_raw_os_error(5),
        Fault::NoSpace | Fault::Short(_) => io::Error::from_raw_os_error(28),
    }
}

impl FileOps {
    pub fn with_faults(faults: Arc<Faults>) -> FileOps {
        FileOps {
            faults: Some(faults),
        }
    }

    fn due(&self, op: Op) -> Option<Fault> {
        self.faults.as_ref().and_then(|f| f.take(op))
    }

    /// Writes all of `buf` at the end of `file` (opened for append).
    pub fn write_all(&self, mut file: &File, buf: &[u8]) -> io::Result<()> {
        match self.due(Op::Write) {
            None => file.write_all(buf),
            Some(Fault::Short(n)) => {
                file.write_all(&buf[..n.min(buf.len())])?;
                Err(error(Fault::Short(n)))
            }
            Some(f) => Err(error(f)),
        }
    }

    /// Writes all of `buf` at `pos` (the file must not be opened for append).
    pub fn write_all_at(&self, file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        match self.due(Op::Write) {
            None => file.write_all_at(buf, pos),
            Some(Fault::Short(n)) => {
                file.write_all_at(&buf[..n.min(buf.len())], pos)?;
                Err(error(Fault::Short(n)))
            }
            Some(f) => Err(error(f)),
        }
    }

    pub fn sync_data(&self, file: &File) -> io::Result<()> {
        match self.due(Op::Sync) {
            None => file.sync_data(),
            Some(f) => Err(error(f)),
        }
    }

    pub fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        match self.due(Op::Truncate) {
            None => file.set_len(len),
            Some(f) => Err(error(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fire_after_skips_and_for_their_count() {
        let f = Faults::new();
        f.plant(Op::Sync, 1, Fault::Io, 2);
        assert_eq!(f.take(Op::Write), None);
        assert_eq!(f.take(Op::Sync), None);
        assert_eq!(f.take(Op::Sync), Some(Fault::Io));
        assert_eq!(f.take(Op::Sync), Some(Fault::Io));
        assert_eq!(f.take(Op::Sync), None);
    }
}
