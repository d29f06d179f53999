//! The `topic` channel on the broker port: turning envelopes into requests and
//! results into envelopes. The byte-level reference is `codecs/PROTOCOL.md`.

use bytes::{Bytes, BytesMut};
use switchyard_codecs::number::parse_u64;
use switchyard_codecs::{Envelope, Labels};

use std::time::Duration;

use super::partition::FsyncPolicy;
use super::registry::{Publish, Published, Routing};
use crate::storage::log::Append;

/// Labels a publish uses itself; any other label is stored with the records.
const OWN: [&str; 5] = ["topic", "key", "partition", "id", "count"];

/// Milliseconds since the Unix epoch: a record's timestamp.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn number(labels: &Labels, name: &str) -> Result<Option<u64>, String> {
    match labels.get(name) {
        None => Ok(None),
        Some(v) => parse_u64(v)
            .map(Some)
            .map_err(|e| format!("label {name}: {}", e.as_str())),
    }
}

/// The `topic` label, required by every request but `list`.
pub fn topic_of(env: &Envelope) -> Result<String, String> {
    env.labels
        .get_str("topic")
        .map(str::to_string)
        .ok_or_else(|| "missing label topic".to_string())
}

/// A `topic publish` envelope as a [`Publish`]: one record (the payload), or with
/// `count` N (at most `max_records`), N records framed `<key_len|-> <value_len>\n<key><value>` in the payload.
/// The records are stamped `ts` (ms since the epoch).
pub fn publish(env: &Envelope, max_records: usize, ts: u64) -> Result<Publish, String> {
    let topic = topic_of(env)?;
    let key = env.labels.get("key").cloned();
    let partition = number(&env.labels, "partition")?.map(|p| u32::try_from(p).unwrap_or(u32::MAX));
    if let Some(id) = env.labels.get(crate::topic::dedup::MSG_ID) {
        crate::topic::dedup::check_msg_id(id).map_err(|e| e.to_string())?;
    }
    let mut labels = Labels::new();
    for (name, value) in env.labels.iter().filter(|(n, _)| !OWN.contains(n)) {
        labels.insert(name, value.clone());
    }
    let records = match number(&env.labels, "count")? {
        None => vec![Append {
            timestamp_ms: ts,
            key: key.clone(),
            labels,
            value: env.payload.clone(),
        }],
        Some(n) if n as usize > max_records => {
            return Err(format!(
                "count {n}: more records than the payload can hold (at most {max_records})"
            ))
        }
        Some(n) => {
            let mut out = Vec::with_capacity(n as usize);
            let mut rest = env.payload.clone();
            for i in 0..n {
                let (k, v, tail) = split_item(&rest)
                    .ok_or_else(|| format!("batch item {i} is malformed or truncated"))?;
                out.push(Append {
                    timestamp_ms: ts,
                    key: k.or_else(|| key.clone()),
                    labels: labels.clone(),
                    value: v,
                });
                rest = tail;
            }
            if !rest.is_empty() {
                return Err(format!("{} bytes after the {n} batch items", rest.len()));
            }
            out
        }
    };
    Ok(Publish {
        topic,
        key,
        partition,
        records,
    })
}

/// One batch item: `<key_len|-> SP <value_len> LF`, then the key and the value. Works on
/// bytes (no UTF-8 pass): this runs once per record of every batch.
fn split_item(buf: &Bytes) -> Option<(Option<Bytes>, Bytes, Bytes)> {
    let head = &buf[..buf.len().min(48)];
    let lf = memchr::memchr(b'\n', head)?;
    let sp = memchr::memchr(b' ', &head[..lf])?;
    let (k, v) = (&head[..sp], &head[sp + 1..lf]);
    let klen = if k == b"-" {
        None
    } else {
        Some(usize::try_from(parse_u64(k).ok()?).ok()?)
    };
    let vlen = usize::try_from(parse_u64(v).ok()?).ok()?;
    let start = lf + 1;
    let kend = start.checked_add(klen.unwrap_or(0))?;
    let end = kend.checked_add(vlen)?;
    if end > buf.len() {
        return None;
    }
    Some((
        klen.map(|_| buf.slice(start..kend)),
        buf.slice(kend..end),
        buf.slice(end..),
    ))
}

/// Frames batch items for a publish payload (the inverse of what [`publish`] reads).
pub fn batch_payload<'a>(items: impl IntoIterator<Item = (Option<&'a [u8]>, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in items {
        match k {
            Some(k) => out.extend_from_slice(format!("{} {}\n", k.len(), v.len()).as_bytes()),
            None => out.extend_from_slice(format!("- {}\n", v.len()).as_bytes()),
        }
        out.extend_from_slice(k.unwrap_or_default());
        out.extend_from_slice(v);
    }
    out
}

/// `topic ack`: `id`, `topic`, `partition`, `offset` (the first), `count`, and
/// `duplicate` = `true` when a `msg_id` was stored before and nothing was stored now.
pub fn ack(id: &Bytes, topic: &str, p: &Published) -> Envelope {
    let ack = Envelope::new("topic", "ack")
        .with_label("id", id.clone())
        .with_label("topic", topic.to_string())
        .with_label("partition", p.partition.to_string())
        .with_label("offset", p.first_offset.to_string())
        .with_label("count", p.count.to_string());
    match p.duplicate {
        true => ack.with_label("duplicate", "true"),
        false => ack,
    }
}

/// `topic error`: `error`, and the request's `id` when it had one.
pub fn error(id: Option<&Bytes>, why: &str) -> Envelope {
    let env = Envelope::new("topic", "error").with_label("error", why.to_string());
    match id {
        Some(id) => env.with_label("id", id.clone()),
        None => env,
    }
}

/// The optional `routing` label of `topic create`.
pub fn routing(env: &Envelope) -> Result<Option<Routing>, String> {
    env.labels.get_str("routing").map(parse_routing).transpose()
}

/// A routing by its name in the protocol and the config.
pub fn parse_routing(name: &str) -> Result<Routing, String> {
    match name {
        "round_robin" => Ok(Routing::RoundRobin),
        "key_hash" => Ok(Routing::KeyHash),
        "explicit" => Ok(Routing::Explicit),
        other => Err(format!(
            "unknown routing `{other}` (round_robin, key_hash or explicit)"
        )),
    }
}

/// An fsync option by its name, with `fsync_interval_ms` (1000 when left out), which
/// only `interval` takes.
pub fn parse_fsync(
    name: Option<&str>,
    interval_ms: Option<u64>,
) -> Result<Option<FsyncPolicy>, String> {
    match name {
        None if interval_ms.is_some() => Err("fsync_interval_ms needs fsync = interval".into()),
        None => Ok(None),
        Some("always") | Some("never") if interval_ms.is_some() => {
            Err("fsync_interval_ms needs fsync = interval".into())
        }
        Some("always") => Ok(Some(FsyncPolicy::Always)),
        Some("never") => Ok(Some(FsyncPolicy::Never)),
        Some("interval") => match interval_ms.unwrap_or(1000) {
            ms @ 1..=3_600_000 => Ok(Some(FsyncPolicy::Interval(Duration::from_millis(ms)))),
            ms => Err(format!("fsync_interval_ms must be 1 to 3600000, not {ms}")),
        },
        Some(other) => Err(format!(
            "unknown fsync `{other}` (always, interval or never)"
        )),
    }
}

/// The optional `fsync` label of `topic create` (`always`, `never`, or `interval` with
/// `fsync_interval_ms`, 1000 when left out).
pub fn fsync(env: &Envelope) -> Result<Option<FsyncPolicy>, String> {
    parse_fsync(
        env.labels.get_str("fsync"),
        number(&env.labels, "fsync_interval_ms")?,
    )
}

/// The optional `retention_ms` and `retention_bytes` labels of `topic create`.
pub fn retention(env: &Envelope) -> Result<(Option<u64>, Option<u64>), String> {
    Ok((
        number(&env.labels, "retention_ms")?,
        number(&env.labels, "retention_bytes")?,
    ))
}

/// The optional `partitions` label of `topic create`.
pub fn partitions(env: &Envelope) -> Result<Option<u32>, String> {
    Ok(number(&env.labels, "partitions")?.map(|p| u32::try_from(p).unwrap_or(u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_batch_publishes() {
        let env = Envelope::new("topic", "publish")
            .with_label("topic", "t")
            .with_label("key", "k")
            .with_label("trace", "x")
            .with_payload(&b"hi"[..]);
        let p = publish(&env, 10, 7).unwrap();
        // Stamped with the time the connection read them at, not a clock read each.
        assert!(p.records.iter().all(|r| r.timestamp_ms == 7));
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(p.records[0].labels.get_str("trace"), Some("x"));
        assert!(p.records[0].labels.get("topic").is_none());

        let payload = batch_payload([
            (Some(&b"a"[..]), &b"one"[..]),
            (None, &b""[..]),
            (None, &b"three"[..]),
        ]);
        let env = Envelope::new("topic", "publish")
            .with_label("topic", "t")
            .with_label("count", "3")
            .with_payload(payload);
        let p = publish(&env, 10, 7).unwrap();
        let values: Vec<&[u8]> = p.records.iter().map(|r| &r.value[..]).collect();
        assert_eq!(values, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(p.records[0].key.as_deref(), Some(&b"a"[..]));
        assert_eq!(p.records[1].key, None);
        assert!(publish(&env, 2, 7)
            .unwrap_err()
            .contains("more records than the payload can hold"));
        let short = Envelope::new("topic", "publish")
            .with_label("topic", "t")
            .with_label("count", "4")
            .with_payload(batch_payload([(None, &b"x"[..])]));
        assert!(publish(&short, 10, 7).unwrap_err().contains("batch item 1"));
        assert!(publish(&Envelope::new("topic", "publish"), 10, 7)
            .unwrap_err()
            .contains("missing label topic"));
    }
}

/// Labels of a `topic deliver` that the broker sets; a stored label of the same name is
/// left out rather than allowed to replace them.
const DELIVER_OWN: &[&str] = &["sub", "topic", "partition", "offset", "timestamp", "key"];

pub(crate) fn put_label(buf: &mut BytesMut, name: &str, value: &[u8]) {
    let mut n = itoa::Buffer::new();
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b" ");
    buf.extend_from_slice(n.format(value.len()).as_bytes());
    buf.extend_from_slice(b"\n");
    buf.extend_from_slice(value);
}

/// A record's stored labels as a delivery carries them: not those the delivery sets.
pub(crate) fn deliver_labels(
    r: &switchyard_codecs::record::Record,
) -> impl Iterator<Item = (&str, &Bytes)> {
    r.labels.iter().filter(|(k, _)| !DELIVER_OWN.contains(k))
}

/// Appends `topic deliver` envelopes for `records` to `buf`, byte for byte what
/// [`Envelope::encode`] writes, without building an envelope per record: the labels
/// every record shares are encoded once.
pub fn encode_deliveries(
    buf: &mut BytesMut,
    sub: &str,
    topic: &str,
    partition: u32,
    records: &[switchyard_codecs::record::Record],
) {
    let mut n = itoa::Buffer::new();
    let mut shared = BytesMut::new();
    put_label(&mut shared, "sub", sub.as_bytes());
    put_label(&mut shared, "topic", topic.as_bytes());
    put_label(&mut shared, "partition", n.format(partition).as_bytes());
    for r in records {
        let stored = || deliver_labels(r);
        let count = 5 + usize::from(r.key.is_some()) + stored().count();
        buf.extend_from_slice(b"topic deliver ");
        buf.extend_from_slice(n.format(count).as_bytes());
        buf.extend_from_slice(b" ");
        buf.extend_from_slice(n.format(r.value.len()).as_bytes());
        buf.extend_from_slice(b"\n");
        buf.extend_from_slice(&shared);
        put_label(
            buf,
            "offset",
            itoa::Buffer::new().format(r.offset).as_bytes(),
        );
        put_label(
            buf,
            "timestamp",
            itoa::Buffer::new().format(r.timestamp_ms).as_bytes(),
        );
        if let Some(k) = &r.key {
            put_label(buf, "key", k);
        }
        for (k, v) in stored() {
            put_label(buf, k, v);
        }
        buf.extend_from_slice(&r.value);
    }
}

#[cfg(test)]
mod deliver_tests {
    use super::*;
    use switchyard_codecs::record::Record;

    #[test]
    fn deliveries_encode_like_envelopes() {
        let mut labels = Labels::new();
        labels.insert("driver", "x");
        labels.insert("offset", "spoof");
        let recs = vec![
            Record {
                offset: 7,
                timestamp_ms: 99,
                key: Some(Bytes::from_static(b"k")),
                labels,
                value: Bytes::from_static(b"v1"),
            },
            Record {
                offset: 8,
                timestamp_ms: 100,
                key: None,
                labels: Labels::new(),
                value: Bytes::new(),
            },
        ];
        let mut fast = BytesMut::new();
        encode_deliveries(&mut fast, "s1", "t", 3, &recs);
        let mut slow = BytesMut::new();
        for r in &recs {
            let mut e = Envelope::new("topic", "deliver")
                .with_label("sub", "s1")
                .with_label("topic", "t")
                .with_label("partition", "3")
                .with_label("offset", r.offset.to_string())
                .with_label("timestamp", r.timestamp_ms.to_string())
                .with_payload(r.value.clone());
            if let Some(k) = &r.key {
                e = e.with_label("key", k.clone());
            }
            if r.offset == 7 {
                e = e.with_label("driver", "x");
            }
            e.encode(&mut slow).unwrap();
        }
        assert_eq!(fast, slow);
    }
}
