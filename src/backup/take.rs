//! `switchyard backup --to DIR [--topic T]…`: a consistent copy of each partition up
//! to the offset the broker reported as synced when the backup started.
//!
//! One `topic list` is the snapshot: for each partition its first retained offset and
//! its end, the `durable_offset` under `fsync = "always"` (what acks and subscribers
//! have seen), else its `next_offset` (what acks have seen); the topic's options; each
//! group's committed offsets. Each partition is then read from its first offset through
//! a batched subscription whose credit never reaches past the end, so publishers go on
//! and nothing after the snapshot is copied. Records are written with the storage's own
//! writer, which encodes them exactly as the broker stored them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchyard_actors::storage::log::Append;
use switchyard_actors::storage::{LogConfig, PartitionLog};
use switchyard_actors::topic::deliver_batch::deliver_items;
use switchyard_actors::topic::registry::{store_group_offsets, store_spec, Routing, TopicSpec};
use switchyard_actors::topic::FsyncPolicy;
use switchyard_codecs::Envelope;

use super::manifest::{Manifest, PartitionEntry, TopicEntry, FORMAT};
use super::{now_ms, sync_dir, BackupError};
use crate::client::conn::label;
use crate::client::{Client, ClientError, Target};

/// Records a partition may have in flight to the backup.
const CREDIT: u64 = 200_000;
/// Records per `topic deliver`.
const BATCH: u64 = 10_000;
/// The subscription's name on the backup's connection.
const SUB: &str = "backup";

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub dir: PathBuf,
    /// The topics to copy; empty: every topic the login may read.
    pub topics: Vec<String>,
    /// How the copy's segments are cut (the config's `[storage]`).
    pub log: LogConfig,
}

/// One topic as the snapshot saw it.
#[derive(Debug)]
struct Snap {
    spec: TopicSpec,
    parts: Vec<PartitionEntry>,
    groups: BTreeMap<String, BTreeMap<u32, u64>>,
}

/// Copies the topics into `o.dir` (absent or empty) and writes the manifest last.
/// Progress lines go to `progress`; the manifest is returned.
pub fn backup(
    to: impl Into<Target>,
    o: &BackupOptions,
    progress: &mut impl Write,
) -> Result<Manifest, BackupError> {
    let to = to.into();
    check_empty(&o.dir)?;
    let mut c = Client::connect(to.clone())?;
    let started_ms = now_ms();
    let snaps = snapshot(&mut c, &o.topics)?;
    std::fs::create_dir_all(&o.dir).map_err(|e| BackupError::io(&o.dir, e))?;
    let mut topics = Vec::with_capacity(snaps.len());
    for s in snaps {
        let tdir = o.dir.join(&s.spec.name);
        std::fs::create_dir_all(&tdir).map_err(|e| BackupError::io(&tdir, e))?;
        for p in &s.parts {
            copy_partition(&mut c, &s.spec.name, p, &tdir, o.log, progress)?;
        }
        store_spec(&tdir, &s.spec).map_err(|e| BackupError::io(&tdir, e))?;
        if !s.groups.is_empty() {
            store_group_offsets(&tdir, &s.groups).map_err(|e| BackupError::io(&tdir, e))?;
        }
        sync_dir(&tdir)?;
        topics.push(TopicEntry {
            name: s.spec.name,
            partitions: s.parts,
            groups: s.groups,
        });
    }
    let m = Manifest {
        format: FORMAT,
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_ms,
        finished_ms: now_ms(),
        broker: to.addr.to_string(),
        topics,
    };
    sync_dir(&o.dir)?;
    m.write(&o.dir)?;
    Ok(m)
}

/// A backup goes into a new or empty dir only: never over another backup, finished or
/// not, nor over anything else.
fn check_empty(dir: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(dir).map(|mut e| e.next().is_none()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::io(dir, e)),
        Ok(true) => Ok(()),
        Ok(false) => {
            let what = if dir.join(super::manifest::MANIFEST).exists() {
                "holds a finished backup"
            } else {
                "is not empty"
            };
            Err(BackupError::Refused(format!(
                "{} {what}: a backup goes into a new or empty dir",
                dir.display()
            )))
        }
    }
}

/// The topics to copy, from one `topic list`.
fn snapshot(c: &mut Client, wanted: &[String]) -> Result<Vec<Snap>, BackupError> {
    let listed = crate::client::topics::list(c)?;
    let listed = listed.as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for name in wanted {
        if !listed.iter().any(|t| t["name"] == name.as_str()) {
            return Err(unlisted(c, name));
        }
    }
    for t in &listed {
        let name = t["name"].as_str().unwrap_or_default();
        if wanted.is_empty() || wanted.iter().any(|w| w == name) {
            out.push(snap(t)?);
        }
    }
    if out.is_empty() {
        return Err(BackupError::Refused(
            "nothing to back up: the broker lists no topic this login may read".into(),
        ));
    }
    Ok(out)
}

/// Why a topic asked for is not listed: what the broker says to a subscription (a
/// permission refusal names the operation), else that it does not exist.
fn unlisted(c: &mut Client, name: &str) -> BackupError {
    let probe = Envelope::new("topic", "subscribe")
        .with_label("topic", name.to_string())
        .with_label("partition", "0")
        .with_label("from", "latest")
        .with_label("sub", "backup-probe")
        .with_label("credit", "1");
    let why = match c.send(&probe).and_then(|()| c.recv()) {
        Err(ClientError::Broker(e)) => e,
        _ => "it is not listed".into(),
    };
    BackupError::Refused(format!("cannot back up topic `{name}`: {why}"))
}

fn snap(t: &serde_json::Value) -> Result<Snap, BackupError> {
    let name = t["name"].as_str().unwrap_or_default().to_string();
    let bad =
        |what: &str| ClientError::Frame(format!("topic list: topic `{name}` has no usable {what}"));
    let routing: Routing =
        serde_json::from_value(t["routing"].clone()).map_err(|_| bad("routing"))?;
    let fsync = match t["fsync"].as_str() {
        Some("always") => FsyncPolicy::Always,
        Some("never") => FsyncPolicy::Never,
        Some("interval") => FsyncPolicy::Interval(Duration::from_millis(
            t["fsync_interval_ms"].as_u64().unwrap_or(1000).max(1),
        )),
        _ => return Err(bad("fsync").into()),
    };
    let mut parts = Vec::new();
    for (i, p) in t["partitions"].as_array().into_iter().flatten().enumerate() {
        if let Some(err) = p["error"].as_str() {
            return Err(BackupError::Refused(format!(
                "partition {name}/{i} cannot be read: {err}"
            )));
        }
        let num = |k: &str| p[k].as_u64().ok_or_else(|| bad(k));
        let first = num("start_offset")?;
        let end = if fsync == FsyncPolicy::Always {
            num("durable_offset")?
        } else {
            num("next_offset")?
        }
        .max(first);
        parts.push(PartitionEntry {
            partition: i as u32,
            first,
            end,
            records: end - first,
        });
    }
    if parts.is_empty() {
        return Err(bad("partitions").into());
    }
    let mut groups: BTreeMap<String, BTreeMap<u32, u64>> =
        serde_json::from_value(t["groups"].clone()).map_err(|_| bad("groups"))?;
    clamp_groups(&mut groups, &parts);
    Ok(Snap {
        spec: TopicSpec {
            partitions: parts.len() as u32,
            name,
            routing,
            fsync: Some(fsync),
            retention_ms: t["retention_ms"].as_u64(),
            retention_bytes: t["retention_bytes"].as_u64(),
        },
        parts,
        groups,
    })
}

/// A committed offset past a partition's `end` becomes `end`: the groups are listed
/// before the partitions' offsets, so an honest consumer's commit is never past it, but
/// a client may commit any offset, and restored as it was it would make the group skip
/// the records published after the restore up to it.
fn clamp_groups(groups: &mut BTreeMap<String, BTreeMap<u32, u64>>, parts: &[PartitionEntry]) {
    for offsets in groups.values_mut() {
        offsets.retain(|p, _| (*p as usize) < parts.len());
        for (p, o) in offsets.iter_mut() {
            *o = (*o).min(parts[*p as usize].end);
        }
    }
}

/// Reads `[first, end)` of one partition and writes it to `tdir/<partition>`.
fn copy_partition(
    c: &mut Client,
    topic: &str,
    p: &PartitionEntry,
    tdir: &Path,
    cfg: LogConfig,
    progress: &mut impl Write,
) -> Result<(), BackupError> {
    let name = format!("{topic}/{}", p.partition);
    let (mut log, _) = PartitionLog::create_at(&tdir.join(p.partition.to_string()), cfg, p.first)?;
    if p.end > p.first {
        read_into(c, topic, p, &mut log, &name, progress)?;
    }
    log.sync()?;
    let _ = writeln!(
        progress,
        "backup {name}: offsets {}..{}, {} records",
        p.first, p.end, p.records
    );
    Ok(())
}

fn read_into(
    c: &mut Client,
    topic: &str,
    p: &PartitionEntry,
    log: &mut PartitionLog,
    name: &str,
    progress: &mut impl Write,
) -> Result<(), BackupError> {
    let fail = |why: String| BackupError::Refused(format!("backup of {name} stopped: {why}"));
    let mut granted = CREDIT.min(p.records);
    c.send(
        &Envelope::new("topic", "subscribe")
            .with_label("topic", topic.to_string())
            .with_label("partition", p.partition.to_string())
            .with_label("from", p.first.to_string())
            .with_label("sub", SUB)
            .with_label("credit", granted.to_string())
            .with_label("batch", BATCH.to_string()),
    )?;
    let mut next = p.first;
    let mut unacked = 0u64;
    let mut last_note = Instant::now();
    while next < p.end {
        let e = c.recv().map_err(|e| match e {
            ClientError::Broker(why) => fail(why),
            other => other.into(),
        })?;
        if e.is("topic", "subscribed") && label(&e, "sub") == SUB {
            let start = label(&e, "partitions");
            let start = start
                .split_once(':')
                .and_then(|(_, o)| o.parse::<u64>().ok());
            if start.is_some_and(|s| s > p.first) {
                return Err(fail(format!(
                    "the broker starts it at {}: retention removed records from {} on meanwhile",
                    start.unwrap_or_default(),
                    p.first
                )));
            }
            continue;
        }
        if !e.is("topic", "deliver") || label(&e, "sub") != SUB {
            continue;
        }
        let items = deliver_items(&e).map_err(ClientError::Frame)?;
        let mut batch = Vec::with_capacity(items.len());
        for it in items {
            if it.offset != next {
                return Err(fail(format!(
                    "offset {} came where {next} was due",
                    it.offset
                )));
            }
            next += 1;
            batch.push(Append {
                timestamp_ms: it.timestamp_ms,
                key: it.key,
                labels: it.labels,
                value: it.value,
            });
        }
        log.append(&batch)?;
        unacked += batch.len() as u64;
        let left = p.end - (p.first + granted);
        if unacked * 2 >= CREDIT.min(p.records) && left > 0 {
            let more = unacked.min(left);
            granted += more;
            unacked = 0;
            c.send(
                &Envelope::new("topic", "credit")
                    .with_label("sub", SUB)
                    .with_label("partition", p.partition.to_string())
                    .with_label("credit", more.to_string()),
            )?;
        }
        if last_note.elapsed() >= Duration::from_secs(1) {
            last_note = Instant::now();
            let _ = writeln!(
                progress,
                "backup {name}: {} of {} records",
                next - p.first,
                p.records
            );
        }
    }
    c.send(&Envelope::new("topic", "unsubscribe").with_label("sub", SUB))?;
    loop {
        let e = c.recv()?;
        if e.is("topic", "unsubscribed") {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_offsets_stay_within_what_was_copied() {
        let parts = [PartitionEntry {
            partition: 0,
            first: 0,
            end: 10,
            records: 10,
        }];
        let mut g = BTreeMap::from([("g".to_string(), BTreeMap::from([(0, 12), (3, 1)]))]);
        clamp_groups(&mut g, &parts);
        assert_eq!(g["g"], BTreeMap::from([(0, 10)]));
        let mut g = BTreeMap::from([("h".to_string(), BTreeMap::from([(0, 4)]))]);
        clamp_groups(&mut g, &parts);
        assert_eq!(g["h"], BTreeMap::from([(0, 4)]));
    }
}
