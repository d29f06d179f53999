//! `switchyard topics [list]`, `topics create NAME [OPTIONS]` and `topics delete NAME`.

use std::io::Write;

use switchyard_codecs::Envelope;

use super::conn::label;
use super::{Client, ClientError, Target};

/// The options of `switchyard topics create`: those of `topic create`; what is left out
/// takes the broker's `[storage]` and `[topics]` defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    pub name: String,
    #[arg(long)]
    pub partitions: Option<u32>,
    #[arg(long, value_parser = ["round_robin", "key_hash", "explicit"])]
    pub routing: Option<String>,
    #[arg(long, value_parser = ["always", "interval", "never"])]
    pub fsync: Option<String>,
    /// With --fsync interval [default: 1000]
    #[arg(long, value_name = "MS")]
    pub fsync_interval_ms: Option<u64>,
    /// Drop segments whose records are all older than this
    #[arg(long, value_name = "MS")]
    pub retention_ms: Option<u64>,
    /// Drop the oldest segments while a partition is larger than this
    #[arg(long, value_name = "BYTES")]
    pub retention_bytes: Option<u64>,
}

/// The broker's `topic list`, as JSON.
pub(crate) fn list(c: &mut Client) -> Result<serde_json::Value, ClientError> {
    c.send(&Envelope::new("topic", "list"))?;
    loop {
        let e = c.recv()?;
        if e.is("topic", "list") {
            return serde_json::from_slice(&e.payload)
                .map_err(|e| ClientError::Frame(format!("topic list: {e}")));
        }
    }
}

/// Waits for `subject` answering the request with `id`; `topic error` is an error.
fn answer(c: &mut Client, subject: &str, id: &str) -> Result<Envelope, ClientError> {
    loop {
        let e = c.recv()?;
        if e.is("topic", subject) && e.labels.get_str("id").is_none_or(|i| i == id) {
            return Ok(e);
        }
    }
}

/// `switchyard topics create`: sends `topic create` and prints the topic as it is now
/// (its options with the defaults filled in), when the login may see it.
pub fn create_topic(
    to: impl Into<Target>,
    a: &CreateArgs,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    let mut c = Client::connect(to)?;
    let mut e = Envelope::new("topic", "create")
        .with_label("topic", a.name.clone())
        .with_label("id", "1");
    for (k, v) in [
        ("partitions", a.partitions.map(|n| n.to_string())),
        ("routing", a.routing.clone()),
        ("fsync", a.fsync.clone()),
        (
            "fsync_interval_ms",
            a.fsync_interval_ms.map(|n| n.to_string()),
        ),
        ("retention_ms", a.retention_ms.map(|n| n.to_string())),
        ("retention_bytes", a.retention_bytes.map(|n| n.to_string())),
    ] {
        if let Some(v) = v {
            e = e.with_label(k, v);
        }
    }
    c.send(&e)?;
    answer(&mut c, "created", "1")?;
    let topics = list(&mut c)?;
    let t = topics
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == a.name.as_str());
    match t {
        Some(t) => writeln!(
            out,
            "created topic {}: {} partitions, {}",
            a.name,
            t["partitions"].as_array().map_or(0, Vec::len),
            options(t)
        ),
        None => writeln!(out, "created topic {}", a.name),
    }
    .map_err(ClientError::Output)
}

/// `switchyard topics delete`: sends `topic delete` (labels `topic`, `id`) and waits
/// for `topic deleted`.
pub fn delete_topic(
    to: impl Into<Target>,
    name: &str,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    let mut c = Client::connect(to)?;
    c.send(
        &Envelope::new("topic", "delete")
            .with_label("topic", name.to_string())
            .with_label("id", "1"),
    )?;
    let e = answer(&mut c, "deleted", "1")?;
    let topic = label(&e, "topic");
    writeln!(
        out,
        "deleted topic {}",
        if topic.is_empty() { name } else { &topic }
    )
    .map_err(ClientError::Output)
}

/// A topic's routing, fsync and retention, as the listing shows them.
fn options(t: &serde_json::Value) -> String {
    let limit = |v: &serde_json::Value, unit: &str| {
        v.as_u64()
            .map_or("none".to_string(), |n| format!("{n} {unit}"))
    };
    format!(
        "routing {}, fsync {}{}, retention {} / {}",
        t["routing"].as_str().unwrap_or("?"),
        t["fsync"].as_str().unwrap_or("?"),
        t["fsync_interval_ms"]
            .as_u64()
            .map_or(String::new(), |ms| format!(" every {ms} ms")),
        limit(&t["retention_ms"], "ms"),
        limit(&t["retention_bytes"], "bytes"),
    )
}

/// `switchyard topics [list]`: each topic's options, its partitions' offsets and sizes, and
/// each group's lag.
pub fn topics(to: impl Into<Target>, out: &mut impl Write) -> Result<(), ClientError> {
    let mut c = Client::connect(to)?;
    let topics = list(&mut c)?;
    writeln!(
        out,
        "{:<24} {:>9} {:>12} {:>12} {:>12} {:>8}",
        "topic", "partition", "start", "next", "bytes", "segments"
    )?;
    for t in topics.as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or("?");
        writeln!(out, "{:<24} {}", name, options(t))?;
        for (p, part) in t["partitions"].as_array().into_iter().flatten().enumerate() {
            writeln!(
                out,
                "{:<24} {:>9} {:>12} {:>12} {:>12} {:>8}",
                name,
                p,
                part["start_offset"].as_u64().unwrap_or(0),
                part["next_offset"].as_u64().unwrap_or(0),
                part["size_bytes"].as_u64().unwrap_or(0),
                part["segments"].as_u64().unwrap_or(0)
            )?;
            // Only what is wrong gets a line: a healthy listing reads as before.
            if let Some(err) = part["error"].as_str() {
                let state = part["state"].as_str().unwrap_or("?");
                writeln!(out, "{:<24} {:>9} {state}: {err}", name, p)?;
            }
            for r in part["damaged"].as_array().into_iter().flatten() {
                let (a, b) = (r[0].as_u64().unwrap_or(0), r[1].as_u64().unwrap_or(0));
                writeln!(out, "{:<24} {:>9} unreadable offsets {a}..={b}", name, p)?;
            }
        }
        for (group, offsets) in t["groups"].as_object().into_iter().flatten() {
            for (p, committed) in offsets.as_object().into_iter().flatten() {
                let next = t["partitions"][p.parse::<usize>().unwrap_or(0)]["next_offset"]
                    .as_u64()
                    .unwrap_or(0);
                let lag = next.saturating_sub(committed.as_u64().unwrap_or(0));
                writeln!(
                    out,
                    "{:<24} group {group} partition {p}: committed {committed}, lag {lag}",
                    name
                )?;
            }
        }
    }
    Ok(())
}
