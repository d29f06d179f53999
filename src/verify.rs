//! `switchyard verify [--repair]`: checks a stopped broker's data dir offline and prints
//! one line per partition and a summary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;

use switchyard_actors::storage::lock::DirLock;
use switchyard_actors::storage::verify::{verify_dir, PartitionReport};
use switchyard_actors::storage::{LogConfig, StorageError};

/// Checks (and with `repair`, mends) every partition under `dir`; true when nothing
/// damaged is left.
pub fn run(
    dir: &Path,
    cfg: LogConfig,
    repair: bool,
    out: &mut impl Write,
) -> Result<bool, StorageError> {
    let reports = verify_dir(dir, cfg, repair)?;
    let mut damaged = 0;
    for r in &reports {
        let _ = writeln!(out, "{}", line(r));
        for d in &r.damage {
            let last = d.next.saturating_sub(1);
            if d.next > d.first {
                let _ = writeln!(
                    out,
                    "  offsets {}..={last} unreadable (segment {}, bytes {}..{}): {}",
                    d.first, d.segment, d.pos, d.end, d.reason
                );
            } else {
                let _ = writeln!(
                    out,
                    "  bad bytes {}..{} in segment {}, no offset lost: {}",
                    d.pos, d.end, d.segment, d.reason
                );
            }
        }
        if !r.is_clean() {
            damaged += 1;
        }
    }
    let records: u64 = reports.iter().map(|r| r.records).sum();
    let _ = writeln!(
        out,
        "{} partitions, {records} records, {damaged} with damage{}",
        reports.len(),
        if repair { " (repaired)" } else { "" }
    );
    Ok(damaged == 0 || repair)
}

fn line(r: &PartitionReport) -> String {
    let state = if r.is_clean() { "ok" } else { "DAMAGED" };
    let mut s = format!(
        "{}/{}: {state}, {} segments, {} records",
        r.topic, r.partition, r.segments, r.records
    );
    if r.torn_bytes > 0 {
        s.push_str(&format!(", {} bytes that are not records", r.torn_bytes));
    }
    if r.bad_indexes > 0 {
        s.push_str(&format!(", {} indexes out of date", r.bad_indexes));
    }
    if r.repaired > 0 {
        s.push_str(&format!(", {} files repaired", r.repaired));
    }
    s
}

/// The `verify` command: exit 0 when nothing is damaged (or all was repaired), 1 when
/// damage is found, 2 when the check cannot run.
pub fn command(config: Option<PathBuf>, dir: Option<PathBuf>, repair: bool) -> ExitCode {
    let settings = match Config::load(config.as_deref()) {
        Ok((c, _)) => c.topic_settings(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = dir.unwrap_or(settings.dir);
    // A repair rewrites segments: never under a running broker. (A check only reads, and
    // stays usable on a backup or a read-only copy, where no lock file can be made.)
    let _lock = match repair {
        true => match DirLock::acquire(&dir) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("error: not repairing: {e}");
                return ExitCode::from(2);
            }
        },
        false => None,
    };
    match run(&dir, settings.log, repair, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
