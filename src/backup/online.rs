//! `switchyard restore --from DIR --broker ADDR`: a backup restored as new topics into a
//! running broker, through the protocol (and the login's permissions: `admin` to
//! create, `publish`, and `subscribe` to commit group offsets).
//!
//! Each topic is created with its stored options, and must be new: one the broker lists
//! is refused, and so is one that holds records once created. Each partition's records
//! are published in offset order to that partition, in batches of consecutive records
//! with the same labels, each acknowledged as the topic's fsync says. A record keeps its
//! key, labels and value; its timestamp is the new broker's (a publish carries none),
//! and its offset is `offset - first`: the same offset when the backup starts at 0.
//! Group offsets are committed shifted the same way (never below 0).

use std::io::Write;
use std::path::Path;

use switchyard_actors::storage::{LogConfig, PartitionLog};
use switchyard_actors::topic::registry::load_spec;
use switchyard_actors::topic::wire::batch_payload;
use switchyard_codecs::record::Record;
use switchyard_codecs::Envelope;

use super::manifest::PartitionEntry;
use super::{check_backup, BackupError, Manifest};
use crate::client::conn::label;
use crate::client::{Client, Target};

/// Records per `topic publish`, at most.
const BATCH: usize = 1000;
/// Publishes sent before their acks are read.
const IN_FLIGHT: usize = 64;

/// Restores every topic of the backup in `from` into the broker at `to`.
pub fn restore_online(
    to: impl Into<Target>,
    from: &Path,
    cfg: LogConfig,
    progress: &mut impl Write,
) -> Result<Manifest, BackupError> {
    let m = check_backup(from, cfg)?;
    let mut c = Client::connect(to)?;
    let listed = crate::client::topics::list(&mut c)?;
    for t in &m.topics {
        if listed
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| l["name"] == t.name.as_str())
        {
            return Err(BackupError::Refused(format!(
                "topic `{}` exists on the broker; restore into a running broker makes new topics only",
                t.name
            )));
        }
    }
    for t in &m.topics {
        create(&mut c, from, &t.name, t.partitions.len() as u32)?;
        for p in &t.partitions {
            publish_partition(&mut c, from, &t.name, p, cfg)?;
            let _ = writeln!(
                progress,
                "restore {}/{}: {} records published",
                t.name, p.partition, p.records
            );
        }
        for (group, offsets) in &t.groups {
            for (&part, &offset) in offsets {
                let first = t.partitions.get(part as usize).map_or(0, |p| p.first);
                commit(&mut c, &t.name, group, part, offset.saturating_sub(first))?;
            }
        }
    }
    Ok(m)
}

/// `topic create` with the options of the backup's `topic.json`, then a check that the
/// topic is empty (a create of an existing topic with the same options succeeds).
fn create(c: &mut Client, from: &Path, name: &str, partitions: u32) -> Result<(), BackupError> {
    let spec = load_spec(&from.join(name), name).ok_or_else(|| BackupError::Damaged {
        dir: from.to_path_buf(),
        why: format!("topic `{name}` has no readable topic.json"),
    })?;
    let mut e = Envelope::new("topic", "create")
        .with_label("topic", name.to_string())
        .with_label("id", "create")
        .with_label("partitions", partitions.to_string())
        .with_label("routing", spec.routing.name());
    if let Some(f) = spec.fsync {
        e = e.with_label("fsync", f.name());
        if let Some(ms) = f.interval_ms() {
            e = e.with_label("fsync_interval_ms", ms.to_string());
        }
    }
    for (k, v) in [
        ("retention_ms", spec.retention_ms),
        ("retention_bytes", spec.retention_bytes),
    ] {
        if let Some(v) = v {
            e = e.with_label(k, v.to_string());
        }
    }
    c.send(&e)?;
    while !c.recv()?.is("topic", "created") {}
    let listed = crate::client::topics::list(c)?;
    let held = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["name"] == name)
        .flat_map(|t| t["partitions"].as_array().cloned().unwrap_or_default())
        .any(|p| p["next_offset"].as_u64() != Some(0));
    if held {
        return Err(BackupError::Refused(format!(
            "topic `{name}` already holds records on the broker; nothing restored into it"
        )));
    }
    Ok(())
}

/// Publishes one partition's records in offset order, each publish acknowledged.
fn publish_partition(
    c: &mut Client,
    from: &Path,
    topic: &str,
    p: &PartitionEntry,
    cfg: LogConfig,
) -> Result<(), BackupError> {
    if p.records == 0 {
        return Ok(());
    }
    let (log, _) = PartitionLog::open(&from.join(topic).join(p.partition.to_string()), cfg)?;
    let mut next = p.first;
    let mut in_flight = 0;
    while next < p.end {
        let records = log.read_records(next, 4 << 20, 10 * BATCH)?;
        if records.is_empty() {
            break;
        }
        for run in runs(&records) {
            next = run[run.len() - 1].offset + 1;
            let mut e = Envelope::new("topic", "publish")
                .with_label("topic", topic.to_string())
                .with_label("partition", p.partition.to_string())
                .with_label("count", run.len().to_string())
                .with_label("id", next.to_string())
                .with_payload(batch_payload(
                    run.iter().map(|r| (r.key.as_deref(), &r.value[..])),
                ));
            for (k, v) in run[0].labels.iter() {
                e.labels.insert(k, v.clone());
            }
            c.send(&e)?;
            in_flight += 1;
            while in_flight > IN_FLIGHT {
                ack(c)?;
                in_flight -= 1;
            }
        }
    }
    for _ in 0..in_flight {
        ack(c)?;
    }
    Ok(())
}

/// Consecutive records with the same labels, at most [`BATCH`] each: one publish each.
///
/// Records with a `msg_id` label are cut differently: the broker takes a publish's
/// `msg_id` as its dedup key, so one original publish (the same id, stamped alike) must
/// go as one publish, however long, and two (another id, or the same id stamped at
/// another time) never as one.
fn runs(records: &[Record]) -> Vec<&[Record]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=records.len() {
        let cut = i == records.len() || {
            let (a, b) = (&records[start], &records[i]);
            b.labels != a.labels
                || match a.labels.get("msg_id") {
                    Some(_) => b.timestamp_ms != a.timestamp_ms,
                    None => i - start >= BATCH,
                }
        };
        if cut {
            out.push(&records[start..i]);
            start = i;
        }
    }
    out
}

/// The next publish's answer: an ack of a stored publish. A `topic error`, or an ack the
/// broker marks as a duplicate (nothing stored), stops the restore rather than losing
/// records unseen.
fn ack(c: &mut Client) -> Result<(), BackupError> {
    loop {
        let e = c.recv()?;
        if e.is("topic", "error") {
            return Err(BackupError::Refused(format!(
                "the broker refused a publish: {}",
                label(&e, "error")
            )));
        }
        if e.is("topic", "ack") {
            if label(&e, "duplicate") == "true" {
                return Err(BackupError::Refused(format!(
                    "the publish of the records before offset {} was taken as a duplicate of one with the same msg_id in the broker's dedup window, so it was not stored: restore it once the window (topics.dedup_window_ms) has passed, or into a broker with dedup_window_ms = 0",
                    label(&e, "id")
                )));
            }
            return Ok(());
        }
    }
}

fn commit(
    c: &mut Client,
    topic: &str,
    group: &str,
    part: u32,
    offset: u64,
) -> Result<(), BackupError> {
    c.send(
        &Envelope::new("topic", "commit")
            .with_label("topic", topic.to_string())
            .with_label("group", group.to_string())
            .with_label("partition", part.to_string())
            .with_label("offset", offset.to_string()),
    )?;
    loop {
        let e = c.recv()?;
        if e.is("topic", "committed")
            && label(&e, "group") == group
            && label(&e, "partition") == part.to_string()
        {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use switchyard_codecs::Labels;

    fn rec(offset: u64, label: Option<&str>) -> Record {
        let mut labels = Labels::new();
        if let Some(l) = label {
            labels.insert("trace", Bytes::copy_from_slice(l.as_bytes()));
        }
        Record {
            offset,
            timestamp_ms: 0,
            key: None,
            labels,
            value: Bytes::from_static(b"v"),
        }
    }

    #[test]
    fn a_run_ends_where_the_labels_change_or_it_is_full() {
        let rs = vec![
            rec(0, None),
            rec(1, None),
            rec(2, Some("a")),
            rec(3, Some("a")),
            rec(4, None),
        ];
        let lens: Vec<usize> = runs(&rs).iter().map(|r| r.len()).collect();
        assert_eq!(lens, vec![2, 2, 1]);
        let many: Vec<Record> = (0..2500).map(|o| rec(o, None)).collect();
        let lens: Vec<usize> = runs(&many).iter().map(|r| r.len()).collect();
        assert_eq!(lens, vec![1000, 1000, 500]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn a_publish_with_a_msg_id_stays_one_run_however_long() {
        let with = |o: u64, id: &str, ts: u64| {
            let mut r = rec(o, None);
            r.labels
                .insert("msg_id", Bytes::copy_from_slice(id.as_bytes()));
            r.timestamp_ms = ts;
            r
        };
        let mut rs: Vec<Record> = (0..2500).map(|o| with(o, "a", 1)).collect();
        rs.push(with(2500, "a", 2));
        rs.push(with(2501, "b", 2));
        let lens: Vec<usize> = runs(&rs).iter().map(|r| r.len()).collect();
        assert_eq!(lens, vec![2500, 1, 1]);
    }
}
