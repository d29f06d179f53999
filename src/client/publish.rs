//! `switchyard pub`: one record, or every line of stdin, in batches of up to 1000
//! records, each batch acknowledged.
//!
//! A batch goes to one partition (PROTOCOL.md, "Publish"), so a client that wants
//! records spread the way the topic routes them must split its batches by partition
//! itself. `pub` asks `topic list` for the topic's partitions and routing first, then
//! gives every record the partition the broker would have given it alone: under
//! `key_hash` a keyed record goes to `key_partition` (the broker's own function, FNV-1a
//! of the key); key-less records (and every record under `round_robin`) are dealt out
//! in turn, one record each, from a partition picked at random per run. Each batch is
//! then one `topic publish` per partition with an explicit `partition`.
//!
//! When the topic is not listed (it does not exist yet, or the login may not subscribe
//! to it), the broker routes: each run of consecutive records with the same key is one
//! publish carrying that `key` (or none), which keeps key routing right and order
//! within a partition. A topic created by that first batch is listed again once it is
//! acknowledged, and the rest is spread.
//!
//! With `--msg-id` (MESSAGE, or at most one batch of stdin) or `--msg-id-prefix P`
//! (batch n carries `P-<n>`), each batch is one publish routed by the broker and
//! carrying its `msg_id`: the same input sent again makes the same publishes with the
//! same ids, and the broker acks those it stored before as duplicates.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::io::BufRead;

use switchyard_actors::topic::registry::key_partition;
use switchyard_actors::topic::wire::batch_payload;
use switchyard_codecs::Envelope;

use super::conn::label;
use super::topics::list;
use super::{Client, ClientError, Target};

/// Records per `topic publish` read from stdin.
const BATCH: usize = 1000;
/// Publishes sent before their acks are read: enough to keep the broker busy, few
/// enough that unread acks never fill the broker's output budget for this connection.
const IN_FLIGHT: u64 = 64;

/// What `switchyard pub` publishes.
#[derive(Debug, Clone, Default)]
pub struct PubOptions {
    pub topic: String,
    /// One record, instead of stdin's lines.
    pub message: Option<String>,
    /// The key of every record (not with `key_separator`).
    pub key: Option<String>,
    /// Every record to this partition.
    pub partition: Option<u32>,
    /// Each line is `<key><separator><value>`; a line without it is a key-less value.
    pub key_separator: Option<String>,
    /// The `msg_id` of the one publish (MESSAGE, or stdin as one batch).
    pub msg_id: Option<String>,
    /// Batch n of stdin carries the `msg_id` `<prefix>-<n>`.
    pub msg_id_prefix: Option<String>,
}

/// What a `pub` stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub topic: String,
    pub records: u64,
    pub partitions: BTreeSet<u32>,
    /// Of `records`, those acked as duplicates of a `msg_id` stored before.
    pub duplicates: u64,
}

impl std::fmt::Display for Published {
    /// `published 4000 records to t (partitions 0-3)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.records == 1 { "" } else { "s" };
        write!(f, "published {} record{s} to {}", self.records, self.topic)?;
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for &p in &self.partitions {
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == p => *last = p,
                _ => runs.push((p, p)),
            }
        }
        let text: Vec<String> = runs
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        match self.partitions.len() {
            0 => Ok(()),
            1 => write!(f, " (partition {})", text.join(",")),
            _ => write!(f, " (partitions {})", text.join(",")),
        }?;
        match self.duplicates {
            0 => Ok(()),
            d => write!(
                f,
                "; {d} of them stored before (duplicate msg_id), not stored again"
            ),
        }
    }
}

type Record = (Option<Vec<u8>>, Vec<u8>);

/// One `topic publish`: its `partition` and `key` labels, when set, and its records.
#[derive(Debug, PartialEq, Eq)]
struct Part {
    partition: Option<u32>,
    key: Option<Vec<u8>>,
    records: Vec<Record>,
}

/// The `msg_id` of batch `n` (from 0), if the options give one.
fn msg_id_of(o: &PubOptions, n: u64) -> Option<String> {
    match (&o.msg_id, &o.msg_id_prefix) {
        (Some(id), _) => Some(id.clone()),
        (None, Some(prefix)) => Some(format!("{prefix}-{n}")),
        (None, None) => None,
    }
}

/// Where the records of a batch go.
#[derive(Debug)]
enum Route {
    /// The broker picks, per run of records with one key.
    Broker,
    /// `--partition`.
    One(u32),
    /// Per record, as the topic's routing would.
    Spread { n: u32, key_hash: bool, next: u32 },
}

impl Route {
    /// The route `topic list` says for `topic`, or `None` when it is not listed.
    fn listed(c: &mut Client, topic: &str) -> Result<Option<Route>, ClientError> {
        let topics = list(c)?;
        let Some(t) = topics
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == topic)
        else {
            return Ok(None);
        };
        let n = t["partitions"].as_array().map_or(0, Vec::len) as u32;
        match t["routing"].as_str() {
            Some("explicit") => Err(ClientError::Usage(format!(
                "topic `{topic}` has explicit routing: name the partition with --partition"
            ))),
            _ if n == 0 => Ok(None),
            routing => Ok(Some(Route::Spread {
                n,
                key_hash: routing == Some("key_hash"),
                next: (std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
                    % u64::from(n)) as u32,
            })),
        }
    }

    /// The publishes for `records`: (partition label, key label, records).
    fn split(&mut self, records: Vec<Record>) -> Vec<Part> {
        match self {
            Route::One(p) => vec![Part {
                partition: Some(*p),
                key: None,
                records,
            }],
            Route::Spread { n, key_hash, next } => {
                let mut parts: Vec<Vec<Record>> = vec![Vec::new(); *n as usize];
                for r in records {
                    let p = match &r.0 {
                        Some(k) if *key_hash => key_partition(k, *n),
                        _ => {
                            let p = *next;
                            *next = (*next + 1) % *n;
                            p
                        }
                    };
                    parts[p as usize].push(r);
                }
                parts
                    .into_iter()
                    .enumerate()
                    .filter(|(_, rs)| !rs.is_empty())
                    .map(|(p, rs)| Part {
                        partition: Some(p as u32),
                        key: None,
                        records: rs,
                    })
                    .collect()
            }
            Route::Broker => {
                let mut runs: Vec<Part> = Vec::new();
                for (k, v) in records {
                    match runs.last_mut() {
                        Some(run) if run.key == k => run.records.push((None, v)),
                        _ => runs.push(Part {
                            partition: None,
                            key: k,
                            records: vec![(None, v)],
                        }),
                    }
                }
                runs
            }
        }
    }
}

/// A line as a record: split at the first `sep` into key and value, when given.
fn record(line: &[u8], o: &PubOptions) -> Record {
    if let Some(sep) = o.key_separator.as_deref().filter(|s| !s.is_empty()) {
        if let Some(i) = memchr::memmem::find(line, sep.as_bytes()) {
            return (Some(line[..i].to_vec()), line[i + sep.len()..].to_vec());
        }
        return (None, line.to_vec());
    }
    (o.key.as_ref().map(|k| k.as_bytes().to_vec()), line.to_vec())
}

/// Up to [`BATCH`] records from `input`, one a line (`\n` or `\r\n` ends a line; the
/// bytes need not be UTF-8).
fn read_batch(input: &mut impl BufRead, o: &PubOptions) -> Result<Vec<Record>, ClientError> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    while out.len() < BATCH {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        out.push(record(&line, o));
    }
    Ok(out)
}

/// The connection and what its acks said.
struct Acks {
    c: Client,
    sent: u64,
    unacked: u64,
    done: Published,
}

impl Acks {
    fn send(
        &mut self,
        o: &PubOptions,
        part: Part,
        msg_id: Option<String>,
    ) -> Result<(), ClientError> {
        let mut e = Envelope::new("topic", "publish")
            .with_label("topic", o.topic.clone())
            .with_label("id", self.sent.to_string())
            .with_label("count", part.records.len().to_string())
            .with_payload(batch_payload(
                part.records
                    .iter()
                    .map(|(k, v)| (k.as_deref(), v.as_slice())),
            ));
        if let Some(p) = part.partition {
            e = e.with_label("partition", p.to_string());
        }
        if let Some(k) = part.key {
            e = e.with_label("key", k);
        }
        if let Some(id) = msg_id {
            e = e.with_label("msg_id", id);
        }
        self.c.send(&e)?;
        self.sent += 1;
        self.unacked += 1;
        while self.unacked > IN_FLIGHT {
            self.ack()?;
        }
        Ok(())
    }

    fn ack(&mut self) -> Result<(), ClientError> {
        loop {
            let e = self.c.recv()?;
            if e.is("topic", "ack") {
                self.unacked -= 1;
                let count = label(&e, "count").parse::<u64>().unwrap_or(0);
                self.done.records += count;
                if label(&e, "duplicate") == "true" {
                    self.done.duplicates += count;
                }
                if let Ok(p) = label(&e, "partition").parse() {
                    self.done.partitions.insert(p);
                }
                return Ok(());
            }
        }
    }

    fn drain(&mut self) -> Result<(), ClientError> {
        while self.unacked > 0 {
            self.ack()?;
        }
        Ok(())
    }
}

/// Publishes `o.message`, or every line of `input`, and waits for every ack.
pub fn publish(
    to: impl Into<Target>,
    o: &PubOptions,
    mut input: impl BufRead,
) -> Result<Published, ClientError> {
    let mut a = Acks {
        c: Client::connect(to)?,
        sent: 0,
        unacked: 0,
        done: Published {
            topic: o.topic.clone(),
            ..Published::default()
        },
    };
    let with_ids = o.msg_id.is_some() || o.msg_id_prefix.is_some();
    if with_ids && o.key_separator.is_some() {
        return Err(ClientError::Usage(
            "--msg-id and --msg-id-prefix send each batch as one publish: not with --key-separator"
                .into(),
        ));
    }
    let mut route = match (o.partition, &o.message) {
        (Some(p), _) => Route::One(p),
        // One record: the broker routes it as it routes any publish.
        (None, Some(_)) => Route::Broker,
        // A batch with an id is one publish (keys are all --key's, one run): sent again
        // it must be the same publish, whatever the topic's partitions are by then.
        (None, None) if with_ids => Route::Broker,
        (None, None) => Route::listed(&mut a.c, &o.topic)?.unwrap_or(Route::Broker),
    };
    let mut relist = matches!(route, Route::Broker) && o.message.is_none() && !with_ids;
    let mut batch = 0u64;
    loop {
        let records = match &o.message {
            Some(m) if a.sent == 0 => vec![record(m.as_bytes(), o)],
            Some(_) => Vec::new(),
            None => read_batch(&mut input, o)?,
        };
        if records.is_empty() {
            break;
        }
        if o.msg_id.is_some() && o.message.is_none() && batch == 0 && records.len() == BATCH {
            // One id names one publish: more than a batch of stdin would be several.
            let more = read_batch(&mut input, o)?;
            if !more.is_empty() {
                return Err(ClientError::Usage(format!(
                    "--msg-id names one publish: at most {BATCH} lines of stdin (--msg-id-prefix numbers each batch)"
                )));
            }
        }
        for part in route.split(records) {
            a.send(o, part, msg_id_of(o, batch))?;
        }
        batch += 1;
        if relist {
            // The first batch may have created the topic: spread the rest.
            relist = false;
            a.drain()?;
            if let Some(r) = Route::listed(&mut a.c, &o.topic)? {
                route = r;
            }
        }
    }
    a.drain()?;
    Ok(a.done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_the_partitions() {
        let mut p = Published {
            topic: "t".into(),
            records: 1,
            partitions: [2].into(),
            duplicates: 0,
        };
        assert_eq!(p.to_string(), "published 1 record to t (partition 2)");
        p.duplicates = 1;
        assert_eq!(
            p.to_string(),
            "published 1 record to t (partition 2); 1 of them stored before (duplicate msg_id), not stored again"
        );
        p.duplicates = 0;
        p.records = 9;
        p.partitions = [0, 1, 2, 3, 5, 7, 8].into();
        assert_eq!(
            p.to_string(),
            "published 9 records to t (partitions 0-3,5,7-8)"
        );
        p.records = 0;
        p.partitions.clear();
        assert_eq!(p.to_string(), "published 0 records to t");
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        let o = PubOptions {
            key_separator: Some("::".into()),
            ..PubOptions::default()
        };
        assert_eq!(
            record(b"k::v::w", &o),
            (Some(b"k".to_vec()), b"v::w".to_vec())
        );
        assert_eq!(record(b"::v", &o), (Some(Vec::new()), b"v".to_vec()));
        assert_eq!(record(b"plain", &o), (None, b"plain".to_vec()));
        let mut input = &b"a::1\r\nb\n\nc::3"[..];
        let rs = read_batch(&mut input, &o).unwrap();
        assert_eq!(rs.len(), 4);
        assert_eq!(rs[0], (Some(b"a".to_vec()), b"1".to_vec()));
        assert_eq!(rs[2], (None, Vec::new()));
        assert_eq!(rs[3], (Some(b"c".to_vec()), b"3".to_vec()));
    }

    #[test]
    fn spreading_matches_the_broker() {
        let mut r = Route::Spread {
            n: 4,
            key_hash: true,
            next: 3,
        };
        let recs: Vec<Record> = (0..6)
            .map(|i| {
                (
                    if i < 2 {
                        Some(format!("k{i}").into_bytes())
                    } else {
                        None
                    },
                    vec![b'0' + i],
                )
            })
            .collect();
        let out = r.split(recs);
        for part in &out {
            for (k, _) in &part.records {
                if let Some(k) = k {
                    assert_eq!(Some(key_partition(k, 4)), part.partition);
                }
            }
        }
        let keyless: usize = out
            .iter()
            .map(|part| part.records.iter().filter(|r| r.0.is_none()).count())
            .sum();
        assert_eq!(keyless, 4);
        let mut b = Route::Broker;
        let runs = b.split(vec![
            (Some(b"a".to_vec()), b"1".to_vec()),
            (Some(b"a".to_vec()), b"2".to_vec()),
            (None, b"3".to_vec()),
            (Some(b"a".to_vec()), b"4".to_vec()),
        ]);
        let shape: Vec<(Option<Vec<u8>>, usize)> =
            runs.into_iter().map(|r| (r.key, r.records.len())).collect();
        assert_eq!(
            shape,
            vec![
                (Some(b"a".to_vec()), 2),
                (None, 1),
                (Some(b"a".to_vec()), 1)
            ]
        );
    }
}
