//! Batched deliveries: a subscription made with `batch = N` gets up to N consecutive
//! records of one partition per `topic deliver`, the way a publish may carry many. The
//! envelope's labels are `sub`, `topic`, `partition`, `offset` (the first record's) and
//! `count`; its payload is `count` items, each
//!
//! ```text
//! <key_len|-> SP <value_len> SP <timestamp_ms> SP <labels_len> LF <key><labels><value>
//! ```
//!
//! where `<labels>` is the record's stored labels as envelope label lines
//! (`<name> SP <len> LF <value>`), `labels_len` bytes in all. Item i has offset
//! `offset + i`. [`deliver_items`] reads both forms back.

use bytes::{Bytes, BytesMut};
use switchyard_codecs::number::parse_u64;
use switchyard_codecs::record::Record;
use switchyard_codecs::{Envelope, Labels};

use super::wire::put_label;

/// The largest `batch` a subscription may ask for.
pub const MAX_DELIVER_BATCH: u64 = 100_000;

/// Appends `topic deliver` envelopes carrying up to `batch` records each. A run of
/// records with a gap in its offsets (none is expected) starts a new envelope, so item
/// offsets are always `offset + i`. Returns how many envelopes it wrote.
pub fn encode_deliver_batches(
    buf: &mut BytesMut,
    sub: &str,
    topic: &str,
    partition: u32,
    records: &[Record],
    batch: usize,
) -> usize {
    let mut n = itoa::Buffer::new();
    let mut rest = records;
    let mut envelopes = 0;
    while !rest.is_empty() {
        envelopes += 1;
        let mut len = 1;
        while len < rest.len().min(batch.max(1)) && rest[len].offset == rest[len - 1].offset + 1 {
            len += 1;
        }
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        // Sized first, then written once straight into `buf`: no payload buffer to
        // grow and copy again, per subscriber, for every record it is sent.
        let size: usize = chunk.iter().map(item_len).sum();
        buf.reserve(size + 128);
        buf.extend_from_slice(b"topic deliver 5 ");
        buf.extend_from_slice(n.format(size).as_bytes());
        buf.extend_from_slice(b"\n");
        put_label(buf, "sub", sub.as_bytes());
        put_label(buf, "topic", topic.as_bytes());
        put_label(
            buf,
            "partition",
            itoa::Buffer::new().format(partition).as_bytes(),
        );
        put_label(
            buf,
            "offset",
            itoa::Buffer::new().format(chunk[0].offset).as_bytes(),
        );
        put_label(
            buf,
            "count",
            itoa::Buffer::new().format(chunk.len()).as_bytes(),
        );
        let start = buf.len();
        for r in chunk {
            match &r.key {
                Some(k) => buf.extend_from_slice(n.format(k.len()).as_bytes()),
                None => buf.extend_from_slice(b"-"),
            }
            for field in [r.value.len() as u64, r.timestamp_ms, labels_len(r) as u64] {
                buf.extend_from_slice(b" ");
                buf.extend_from_slice(n.format(field).as_bytes());
            }
            buf.extend_from_slice(b"\n");
            buf.extend_from_slice(r.key.as_deref().unwrap_or_default());
            for (k, v) in r.labels.iter() {
                put_label(buf, k, v);
            }
            buf.extend_from_slice(&r.value);
        }
        debug_assert_eq!(
            buf.len() - start,
            size,
            "a batch's payload is the size its header says"
        );
    }
    envelopes
}

fn digits(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The bytes of a record's label lines in a batch item: every stored label (an item
/// has a block of its own, so none clashes with the envelope's `sub`, `offset`, …).
fn labels_len(r: &Record) -> usize {
    r.labels
        .iter()
        .map(|(k, v)| k.len() + 1 + digits(v.len() as u64) + 1 + v.len())
        .sum()
}

/// The bytes of a record's batch item: its head line, key, labels and value.
fn item_len(r: &Record) -> usize {
    let key = r.key.as_ref().map_or(1, |k| digits(k.len() as u64));
    let labels = labels_len(r);
    let head = key
        + 1
        + digits(r.value.len() as u64)
        + 1
        + digits(r.timestamp_ms)
        + 1
        + digits(labels as u64)
        + 1;
    head + r.key.as_ref().map_or(0, |k| k.len()) + labels + r.value.len()
}

/// One record of a `topic deliver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredItem {
    pub offset: u64,
    pub timestamp_ms: u64,
    pub key: Option<Bytes>,
    /// The labels it was published with.
    pub labels: Labels,
    pub value: Bytes,
}

fn num(env: &Envelope, name: &str) -> Result<u64, String> {
    let v = env
        .labels
        .get(name)
        .ok_or_else(|| format!("deliver without {name}"))?;
    parse_u64(v).map_err(|_| format!("deliver label {name} is not a number"))
}

/// The records of a `topic deliver`, single or batched.
pub fn deliver_items(env: &Envelope) -> Result<Vec<DeliveredItem>, String> {
    let offset = num(env, "offset")?;
    if env.labels.get("count").is_none() {
        let mut labels = Labels::new();
        for (k, v) in env.labels.iter() {
            if !["sub", "topic", "partition", "offset", "timestamp", "key"].contains(&k) {
                labels.insert(k, v.clone());
            }
        }
        return Ok(vec![DeliveredItem {
            offset,
            timestamp_ms: num(env, "timestamp")?,
            key: env.labels.get("key").cloned(),
            labels,
            value: env.payload.clone(),
        }]);
    }
    let count = num(env, "count")?;
    let mut out = Vec::with_capacity(count.min(MAX_DELIVER_BATCH) as usize);
    // Positions into the payload, which each key and value is a slice of: no string,
    // vector or reference count per item beyond the slices handed out (a subscriber
    // reads millions of items a second this way).
    let all = &env.payload;
    let mut pos = 0;
    for i in 0..count {
        let bad = || format!("deliver item {i} is malformed or truncated");
        let rest = &all[pos..];
        let lf = memchr::memchr(b'\n', rest).ok_or_else(bad)?;
        let mut f = rest[..lf].split(|&c| c == b' ');
        let (Some(k), Some(v), Some(ts), Some(l), None) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad());
        };
        let n = |s: &[u8]| parse_u64(s).map(|x| x as usize).map_err(|_| bad());
        let klen = if k == b"-" { None } else { Some(n(k)?) };
        let (vlen, llen) = (n(v)?, n(l)?);
        let start = pos + lf + 1;
        let lstart = start.checked_add(klen.unwrap_or(0)).ok_or_else(bad)?;
        let vstart = lstart.checked_add(llen).ok_or_else(bad)?;
        let end = vstart.checked_add(vlen).ok_or_else(bad)?;
        if end > all.len() {
            return Err(bad());
        }
        out.push(DeliveredItem {
            offset: offset + i,
            timestamp_ms: n(ts)? as u64,
            key: klen.map(|_| all.slice(start..lstart)),
            labels: read_labels(&all[lstart..vstart]).ok_or_else(bad)?,
            value: all.slice(vstart..end),
        });
        pos = end;
    }
    if pos != all.len() {
        return Err(format!(
            "{} bytes after the {count} deliver items",
            all.len() - pos
        ));
    }
    Ok(out)
}

/// Label lines `<name> SP <len> LF <value>`, back to back.
fn read_labels(mut b: &[u8]) -> Option<Labels> {
    let mut out = Labels::new();
    while !b.is_empty() {
        let lf = memchr::memchr(b'\n', b)?;
        let sp = memchr::memchr(b' ', &b[..lf])?;
        let name = std::str::from_utf8(&b[..sp]).ok()?;
        let len = usize::try_from(parse_u64(&b[sp + 1..lf]).ok()?).ok()?;
        let end = (lf + 1).checked_add(len)?;
        out.insert(
            name.to_string(),
            Bytes::copy_from_slice(b.get(lf + 1..end)?),
        );
        b = &b[end..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_codecs::{Frame, FrameCodec, Limits};
    use tokio_util::codec::Decoder;

    fn rec(
        offset: u64,
        key: Option<&'static [u8]>,
        label: Option<&str>,
        value: &'static [u8],
    ) -> Record {
        let mut labels = Labels::new();
        if let Some(l) = label {
            labels.insert("trace", l.to_string());
        }
        Record {
            offset,
            timestamp_ms: 1000 + offset,
            key: key.map(Bytes::from_static),
            labels,
            value: Bytes::from_static(value),
        }
    }

    fn decode_all(mut buf: BytesMut) -> Vec<Envelope> {
        let mut c = FrameCodec::detect(Limits::default());
        let mut out = Vec::new();
        while let Some(Frame::Envelope(e)) = c.decode(&mut buf).unwrap() {
            out.push(e);
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn batches_split_at_the_size_and_at_gaps_and_read_back() {
        let recs = vec![
            rec(5, Some(b"k1"), Some("a"), b"one"),
            rec(6, None, None, b""),
            rec(7, Some(b""), Some("b\nc"), b"three\nlines"),
            rec(9, None, None, b"after a gap"),
        ];
        let mut buf = BytesMut::new();
        assert_eq!(encode_deliver_batches(&mut buf, "s", "t", 2, &recs, 2), 3);
        let envs = decode_all(buf);
        let counts: Vec<_> = envs
            .iter()
            .map(|e| e.labels.get_str("count").unwrap())
            .collect();
        assert_eq!(counts, ["2", "1", "1"], "size 2, then the gap before 9");
        let mut items = Vec::new();
        for e in &envs {
            assert_eq!(e.labels.get_str("partition"), Some("2"));
            items.extend(deliver_items(e).unwrap());
        }
        let want: Vec<_> = recs
            .iter()
            .map(|r| DeliveredItem {
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
                key: r.key.clone(),
                labels: r.labels.clone(),
                value: r.value.clone(),
            })
            .collect();
        assert_eq!(items, want);
    }

    #[test]
    fn a_batch_carries_labels_named_like_the_envelopes_own() {
        let mut r = rec(4, None, Some("t"), b"v");
        r.labels.insert("sub", "mine");
        r.labels.insert("offset", "99");
        let mut buf = BytesMut::new();
        encode_deliver_batches(&mut buf, "s", "t", 0, std::slice::from_ref(&r), 10);
        let env = &decode_all(buf)[0];
        assert_eq!(
            (env.labels.get_str("sub"), env.labels.get_str("offset")),
            (Some("s"), Some("4"))
        );
        let items = deliver_items(env).unwrap();
        assert_eq!(items[0].labels, r.labels);
    }

    #[test]
    fn single_deliveries_read_back_too() {
        let recs = vec![rec(3, Some(b"k"), Some("x"), b"v")];
        let mut buf = BytesMut::new();
        super::super::wire::encode_deliveries(&mut buf, "s", "t", 0, &recs);
        let items = deliver_items(&decode_all(buf)[0]).unwrap();
        assert_eq!(items[0].labels.get_str("trace"), Some("x"));
        assert_eq!((items[0].offset, items[0].timestamp_ms), (3, 1003));
    }

    #[test]
    fn malformed_items_are_errors() {
        for payload in [
            &b"- 5 1 0\nabc"[..],
            b"x 1 1 0\na",
            b"- 1 1\na",
            b"- 1 1 3\nab\na",
        ] {
            let e = Envelope::new("topic", "deliver")
                .with_label("offset", "0")
                .with_label("count", "1")
                .with_payload(payload.to_vec());
            assert!(deliver_items(&e).is_err(), "{payload:?}");
        }
    }
}
