//! `switchyard sub`: prints a topic's records as `--format` or `--json` says, in
//! batched deliveries, and outlives broker restarts.
//!
//! What it has printed is what it resumes after. It keeps, per partition, the next
//! offset to print: the start offset `topic subscribed` reported, then one past each
//! printed record. After a reconnect it subscribes to each of those partitions `from`
//! that offset (a group rejoins and starts at its commits), and it drops any record
//! below it, so a broker restart shows neither a gap nor a duplicate. In a group it
//! commits each batch it printed and waits for `topic committed` before it prints the
//! next: the group's commit is never behind what was printed by more than one batch,
//! and never ahead of it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;

use switchyard_actors::topic::deliver_batch::deliver_items;
use switchyard_codecs::Envelope;

use super::conn::label;
use super::format::{render_json, Format};
use super::retry::{with_reconnect, Backoff};
use super::{Client, ClientError, Target};

/// Options of `switchyard sub` (the command line takes them as they are).
#[derive(Debug, Clone, clap::Args)]
pub struct SubOptions {
    pub topic: String,
    /// earliest, latest, committed or an offset [default: latest; in a group, committed]
    #[arg(long)]
    pub from: Option<String>,
    /// Join this consumer group (and commit what is printed)
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub partition: Option<u32>,
    /// Records in flight per partition
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub credit: u64,
    /// Stop after this many records
    #[arg(long)]
    pub max: Option<u64>,
    /// Print each record so: %t topic, %p partition, %o offset, %k key, %T timestamp
    /// (ms), %h labels (name=value,…), %s value, %S value size, %% a %; \n \t \r \\
    /// [default: "%p %o %s\n"]
    #[arg(long, conflicts_with = "json")]
    pub format: Option<Format>,
    /// Print each record as one JSON object a line
    #[arg(long)]
    pub json: bool,
    /// Exit when the broker closes the connection instead of reconnecting
    #[arg(long)]
    pub no_reconnect: bool,
}

impl SubOptions {
    /// Records per `topic deliver`: enough to print in few writes, few enough that
    /// two deliveries fit in the credit, so one arrives while the other is printed.
    fn batch(&self) -> u64 {
        (self.credit / 2).clamp(1, 1000)
    }
}

/// What survives a reconnect.
#[derive(Debug, Default)]
struct Progress {
    /// Per partition, the next offset to print.
    next: BTreeMap<u32, u64>,
    printed: u64,
}

/// Prints records until `max` or, with `no_reconnect`, until the broker closes; in a
/// group, commits what it printed. Returns how many records it printed.
pub fn subscribe(
    to: impl Into<Target>,
    o: &SubOptions,
    out: &mut impl Write,
) -> Result<u64, ClientError> {
    let to = to.into();
    let format = o.format.clone().unwrap_or_default();
    let mut p = Progress::default();
    with_reconnect(!o.no_reconnect, "sub", |backoff| {
        Session {
            c: Client::connect(to.clone())?,
            o,
            format: &format,
            pending: VecDeque::new(),
            consumed: HashMap::new(),
            committed: HashMap::new(),
        }
        .run(&mut p, backoff, out)
    })?;
    Ok(p.printed)
}

/// One connection's subscription.
struct Session<'a> {
    c: Client,
    o: &'a SubOptions,
    format: &'a Format,
    /// Envelopes read while waiting for a commit's answer.
    pending: VecDeque<Envelope>,
    /// Records received per (subscription, partition) since credit was last granted.
    consumed: HashMap<(String, u32), u64>,
    /// Per partition, the offset this connection last had committed.
    committed: HashMap<u32, u64>,
}

impl Session<'_> {
    fn run(
        &mut self,
        p: &mut Progress,
        backoff: &mut Backoff,
        out: &mut impl Write,
    ) -> Result<(), ClientError> {
        let requests = self.requests(&p.next);
        self.c.send_all(&requests)?;
        let mut buf = Vec::new();
        while self.o.max.is_none_or(|m| p.printed < m) {
            let e = match self.pending.pop_front() {
                Some(e) => e,
                None => self.c.recv()?,
            };
            if e.is("topic", "subscribed") {
                backoff.reset();
                for start in label(&e, "partitions").split(',').filter(|s| !s.is_empty()) {
                    if let Some((part, offset)) = start.split_once(':') {
                        if let (Ok(part), Ok(offset)) = (part.parse(), offset.parse()) {
                            p.next.entry(part).or_insert(offset);
                        }
                    }
                }
            } else if e.is("topic", "assigned") {
                // A (re)assigned partition starts with the subscription's whole credit.
                let sub = label(&e, "sub");
                self.consumed.retain(|(s, _), _| *s != sub);
            } else if e.is("topic", "deliver") {
                buf.clear();
                self.deliver(&e, p, &mut buf)?;
                out.write_all(&buf).map_err(ClientError::Output)?;
                out.flush().map_err(ClientError::Output)?;
                let part = partition(&e)?;
                if let (Some(g), Some(&next)) = (&self.o.group, p.next.get(&part)) {
                    if self.committed.get(&part) != Some(&next) {
                        self.commit(g, part, next)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The subscriptions to make: as asked the first time; after a reconnect, a plain
    /// subscriber resumes each partition it knows after what it printed.
    fn requests(&self, next: &BTreeMap<u32, u64>) -> Vec<Envelope> {
        let o = self.o;
        let base = |sub: String| {
            Envelope::new("topic", "subscribe")
                .with_label("topic", o.topic.clone())
                .with_label("sub", sub)
                .with_label("credit", o.credit.to_string())
                .with_label("batch", o.batch().to_string())
        };
        if o.group.is_some() || next.is_empty() {
            let mut e = base("cli".into());
            for (k, v) in [
                ("from", o.from.clone()),
                ("group", o.group.clone()),
                ("partition", o.partition.map(|p| p.to_string())),
            ] {
                if let Some(v) = v {
                    e = e.with_label(k, v);
                }
            }
            return vec![e];
        }
        next.iter()
            .map(|(p, from)| {
                base(format!("cli-{p}"))
                    .with_label("partition", p.to_string())
                    .with_label("from", from.to_string())
            })
            .collect()
    }

    /// Renders the records of a `topic deliver` that were not printed yet, and grants
    /// credit back for them.
    fn deliver(
        &mut self,
        e: &Envelope,
        p: &mut Progress,
        buf: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        let part = partition(e)?;
        let items = deliver_items(e).map_err(ClientError::Frame)?;
        for r in &items {
            if p.next.get(&part).is_some_and(|&n| r.offset < n) {
                continue;
            }
            if self.o.max.is_some_and(|m| p.printed >= m) {
                break;
            }
            if self.o.json {
                render_json(buf, &self.o.topic, part, r);
            } else {
                self.format.render(buf, &self.o.topic, part, r);
            }
            p.next.insert(part, r.offset + 1);
            p.printed += 1;
        }
        let sub = label(e, "sub");
        let n = self.consumed.entry((sub.clone(), part)).or_insert(0);
        *n += items.len() as u64;
        if *n * 2 >= self.o.credit {
            let grant = std::mem::take(n);
            self.c.send(
                &Envelope::new("topic", "credit")
                    .with_label("sub", sub)
                    .with_label("partition", part.to_string())
                    .with_label("credit", grant.to_string()),
            )?;
        }
        Ok(())
    }

    /// Commits `offset` (the next to read) and waits for the broker to have stored it;
    /// what arrives meanwhile is kept for later.
    fn commit(&mut self, group: &str, part: u32, offset: u64) -> Result<(), ClientError> {
        self.c.send(
            &Envelope::new("topic", "commit")
                .with_label("topic", self.o.topic.clone())
                .with_label("group", group.to_string())
                .with_label("partition", part.to_string())
                .with_label("offset", offset.to_string()),
        )?;
        loop {
            let e = self.c.recv()?;
            if e.is("topic", "committed")
                && label(&e, "partition") == part.to_string()
                && label(&e, "offset") == offset.to_string()
            {
                self.committed.insert(part, offset);
                return Ok(());
            }
            self.pending.push_back(e);
        }
    }
}

fn partition(e: &Envelope) -> Result<u32, ClientError> {
    label(e, "partition")
        .parse()
        .map_err(|_| ClientError::Frame("a deliver without a partition".into()))
}
