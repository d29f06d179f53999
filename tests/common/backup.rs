//! Blocking helpers for the backup tests: publish with acks, commit, list, and read a
//! partition back, with the client library over real TCP.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use switchyard::client::{Client, Target};
use switchyard_actors::storage::{LogConfig, PartitionLog};
use switchyard_actors::topic::deliver_batch::deliver_items;
pub use switchyard_actors::topic::deliver_batch::DeliveredItem;
use switchyard_actors::topic::wire::batch_payload;
use switchyard_codecs::record::Record;
use switchyard_codecs::Envelope;

/// Small segments, so a backup spans closed segments and the active one.
pub fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        ..LogConfig::default()
    }
}

pub const STORAGE: &str = "fsync = \"always\"\nsegment_bytes = 65536\n";

/// Runs blocking client code off the broker's thread.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

pub fn create(c: &mut Client, topic: &str, partitions: u32, routing: &str) {
    c.send(
        &Envelope::new("topic", "create")
            .with_label("topic", topic.to_string())
            .with_label("partitions", partitions.to_string())
            .with_label("routing", routing.to_string()),
    )
    .unwrap();
    while !c.recv().unwrap().is("topic", "created") {}
}

/// Publishes `n` keyed records to `partition` with `labels`, and waits for the ack.
pub fn publish(c: &mut Client, topic: &str, partition: u32, n: usize, labels: &[(&str, &str)]) {
    let items: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| {
            let k = format!("k{i}").into_bytes();
            let v = format!("value {i} of {partition} {}", "x".repeat(i % 97)).into_bytes();
            (k, v)
        })
        .collect();
    let mut e = Envelope::new("topic", "publish")
        .with_label("topic", topic.to_string())
        .with_label("partition", partition.to_string())
        .with_label("count", n.to_string())
        .with_label("id", "p")
        .with_payload(batch_payload(
            items.iter().map(|(k, v)| (Some(&k[..]), &v[..])),
        ));
    for (k, v) in labels {
        e.labels
            .insert(k.to_string(), Bytes::copy_from_slice(v.as_bytes()));
    }
    c.send(&e).unwrap();
    while !c.recv().unwrap().is("topic", "ack") {}
}

pub fn commit(c: &mut Client, topic: &str, group: &str, partition: u32, offset: u64) {
    c.send(
        &Envelope::new("topic", "commit")
            .with_label("topic", topic.to_string())
            .with_label("group", group.to_string())
            .with_label("partition", partition.to_string())
            .with_label("offset", offset.to_string()),
    )
    .unwrap();
    while !c.recv().unwrap().is("topic", "committed") {}
}

/// The broker's `topic list` entry for `topic`.
pub fn listed(to: Target, topic: &str) -> serde_json::Value {
    let mut c = Client::connect(to).unwrap();
    c.send(&Envelope::new("topic", "list")).unwrap();
    loop {
        let e = c.recv().unwrap();
        if e.is("topic", "list") {
            let all: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
            return all
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == topic)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
        }
    }
}

/// Records `[from, end)` of a partition, through a batched subscription.
pub fn read(to: Target, topic: &str, partition: u32, from: u64, end: u64) -> Vec<DeliveredItem> {
    let mut c = Client::connect(to).unwrap();
    c.send(
        &Envelope::new("topic", "subscribe")
            .with_label("topic", topic.to_string())
            .with_label("partition", partition.to_string())
            .with_label("from", from.to_string())
            .with_label("credit", "1000000")
            .with_label("batch", "1000"),
    )
    .unwrap();
    let mut out: Vec<DeliveredItem> = Vec::new();
    while out.last().map_or(from, |r| r.offset + 1) < end {
        let e = c.recv().unwrap();
        if e.is("topic", "deliver") {
            out.extend(deliver_items(&e).unwrap());
        }
    }
    out.truncate((end - from) as usize);
    out
}

/// A partition's records `[from, end)` as stored in a data dir (of a stopped broker).
pub fn on_disk(
    dir: &std::path::Path,
    topic: &str,
    partition: u32,
    from: u64,
    end: u64,
) -> Vec<Record> {
    let (log, _) =
        PartitionLog::open(&dir.join(topic).join(partition.to_string()), log_config()).unwrap();
    let mut out: Vec<Record> = Vec::new();
    let mut next = from;
    while next < end {
        let got = log.read(next, 1 << 20).unwrap();
        assert!(!got.is_empty(), "{topic}/{partition}: nothing at {next}");
        next = got.last().unwrap().offset + 1;
        out.extend(got);
    }
    out.truncate((end - from) as usize);
    out
}

/// The record as stored, byte for byte.
pub fn encoded(r: &Record) -> Vec<u8> {
    let mut b = bytes::BytesMut::new();
    switchyard_codecs::record::encode(r, &mut b).unwrap();
    b.to_vec()
}

/// A producer publishing acked batches in turn to `partitions` until `stop`; returns
/// how many records it published.
pub fn producer(to: Target, topic: &'static str, partitions: u32, stop: Arc<AtomicBool>) -> u64 {
    let mut c = Client::connect(to).unwrap();
    let mut n = 0u64;
    let mut i = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let trace = format!("t{i}");
        // A stored label named like a deliver's own (`sub`) must survive the copy too.
        let labels: &[(&str, &str)] = match i % 3 {
            0 => &[],
            1 => &[("trace", &trace)],
            _ => &[("sub", "s"), ("trace", &trace)],
        };
        publish(&mut c, topic, i % partitions, 20, labels);
        n += 20;
        i += 1;
    }
    n
}
