//! The `backup` and `restore` commands: options from the command line and the config,
//! progress on stderr, one summary line on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use switchyard_actors::topic::TopicSettings;

use super::RestoreOptions;
use super::{backup, restore_dir, restore_online, BackupError, BackupOptions, Manifest};
use crate::client::{ClientError, Target};
use crate::config::Config;

/// The config's storage settings: how a backup's segments are cut and checked, and
/// the data dir a restore goes into by default.
pub fn settings(config: Option<&Path>) -> Result<TopicSettings, ClientError> {
    Config::load(config)
        .map(|(c, _)| c.topic_settings())
        .map_err(|e| ClientError::Usage(e.to_string()))
}

/// A backup error as the client commands report theirs.
fn client_error(e: BackupError) -> ClientError {
    match e {
        BackupError::Client(c) => c,
        other => ClientError::Usage(other.to_string()),
    }
}

/// `N topics, P partitions, R records`.
fn counts(m: &Manifest) -> String {
    format!(
        "{} topics, {} partitions, {} records",
        m.topics.len(),
        m.partitions(),
        m.records()
    )
}

fn rate(records: u64, started: Instant) -> String {
    let s = started.elapsed().as_secs_f64();
    format!(
        "in {s:.2} s ({:.0} records/s)",
        records as f64 / s.max(1e-9)
    )
}

/// `switchyard backup --to DIR [--topic T]…`.
pub fn run_backup(
    to: Target,
    dir: PathBuf,
    topics: Vec<String>,
    settings: &TopicSettings,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    let started = Instant::now();
    let o = BackupOptions {
        dir,
        topics,
        log: settings.log,
    };
    let m = backup(to, &o, &mut std::io::stderr().lock()).map_err(client_error)?;
    writeln!(
        out,
        "backed up {} to {} {}, up to offsets {}",
        counts(&m),
        o.dir.display(),
        rate(m.records(), started),
        m.offsets_text()
    )
    .map_err(ClientError::Output)
}

/// `switchyard restore --from DIR --broker ADDR`.
pub fn run_restore_online(
    to: Target,
    from: &Path,
    settings: &TopicSettings,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    let started = Instant::now();
    let addr = to.addr.to_string();
    let m = restore_online(to, from, settings.log, &mut std::io::stderr().lock())
        .map_err(client_error)?;
    writeln!(
        out,
        "restored {} into the broker at {addr} {}",
        counts(&m),
        rate(m.records(), started)
    )
    .map_err(ClientError::Output)
}

/// `switchyard restore --from DIR [--dir DATA_DIR] [--force]`.
pub fn run_restore_dir(
    from: PathBuf,
    dir: Option<PathBuf>,
    force: bool,
    settings: TopicSettings,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    let started = Instant::now();
    let o = RestoreOptions {
        from,
        data_dir: dir.unwrap_or(settings.dir),
        force,
        log: settings.log,
    };
    let m = restore_dir(&o, &mut std::io::stderr().lock()).map_err(client_error)?;
    writeln!(
        out,
        "restored {} into {} {}, offsets {}",
        counts(&m),
        o.data_dir.display(),
        rate(m.records(), started),
        m.offsets_text()
    )
    .map_err(ClientError::Output)
}
