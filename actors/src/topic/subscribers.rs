//! A partition's subscribers: where each one is, and how many more records it has
//! asked for (credit). Records go out only against credit, so a subscriber that
//! stops asking costs no memory.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use switchyard_codecs::record::Record;
use tracing::error;

use crate::budget::{record_bytes, Window};
use crate::storage::{PartitionLog, StorageError};

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    Offset(u64),
}

/// Records for one subscription, in offset order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Deliveries {
    pub sub: String,
    pub topic: String,
    pub partition: u32,
    pub records: Vec<Record>,
    /// The subscription reached records it cannot read and ended on this partition
    /// (after `records`); the subscriber may subscribe again after them.
    pub unreadable: Option<Unreadable>,
    /// What was charged to the receiver's window for these records.
    pub charged: u64,
    /// The topic was deleted: the subscription has ended on every partition.
    pub deleted: bool,
}

/// Offsets a subscription could not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub first: u64,
    /// The last offset of the range, when the log knows it.
    pub last: Option<u64>,
    pub reason: String,
}

/// A subscription is named by its connection and the client's `sub` label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubKey {
    pub conn: u64,
    pub sub: String,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<u64, String>")]
pub struct Subscribe {
    pub key: SubKey,
    pub to: Recipient<Deliveries>,
    pub start: StartAt,
    pub credit: u64,
    /// The receiver's byte window: no records are read for it while it is full.
    pub window: Option<Arc<Window>>,
}

/// `n` more records for a subscription (0: only a nudge to send what is due, after its
/// window drained).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Credit {
    pub key: SubKey,
    pub n: u64,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub key: SubKey,
}

/// Ends a group member's subscription to a partition that moves to another member;
/// answered with the offset it started at and the one it would have been sent next
/// (what it was sent ends there), `None` when it had none.
#[derive(Debug, Message)]
#[rtype(result = "Option<(u64, u64)>")]
pub struct Revoke {
    pub key: SubKey,
}

#[derive(Debug)]
struct Sub {
    to: Recipient<Deliveries>,
    /// Where it started.
    from: u64,
    next: u64,
    credit: u64,
    window: Option<Arc<Window>>,
}

/// At most this much is read for one delivery.
const READ_BYTES: usize = 256 << 10;

/// At most this much is read for all subscribers in one turn of the partition; the rest
/// waits for the next try, so a fan-out of large records to many subscribers does not
/// hold the broker's thread for seconds.
const TURN_BYTES: u64 = 4 << 20;

#[derive(Debug)]
pub struct Subscribers {
    topic: String,
    partition: u32,
    subs: HashMap<SubKey, Sub>,
    /// Subscriptions ended by unreadable records.
    unreadable: u64,
    /// Where the next turn of `pump` starts.
    next_first: usize,
}

impl Subscribers {
    pub fn new(topic: String, partition: u32) -> Self {
        Subscribers {
            topic,
            partition,
            subs: HashMap::new(),
            unreadable: 0,
            next_first: 0,
        }
    }

    /// Subscriptions ended by unreadable records so far.
    pub fn unreadable(&self) -> u64 {
        self.unreadable
    }

    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Adds (or replaces) a subscription; returns the offset it starts at.
    pub fn add(&mut self, s: Subscribe, log: &PartitionLog) -> Result<u64, String> {
        let next = match s.start {
            StartAt::Earliest => log.start_offset(),
            StartAt::Latest => log.next_offset(),
            StartAt::Offset(o) if o > log.next_offset() => {
                return Err(format!(
                    "offset {o} is past the end of {}/{} ({})",
                    self.topic,
                    self.partition,
                    log.next_offset()
                ))
            }
            StartAt::Offset(o) => o.max(log.start_offset()),
        };
        self.subs.insert(
            s.key,
            Sub {
                to: s.to,
                from: next,
                next,
                credit: s.credit,
                window: s.window,
            },
        );
        Ok(next)
    }

    pub fn credit(&mut self, key: &SubKey, n: u64) {
        if let Some(s) = self.subs.get_mut(key) {
            s.credit = s.credit.saturating_add(n);
        }
    }

    /// Tells every subscriber that the topic was deleted, and forgets them.
    pub fn end_all_deleted(&mut self) {
        for (key, s) in self.subs.drain() {
            // Past a full mailbox: one notice per subscriber, and it must not be lost.
            s.to.do_send(Deliveries {
                sub: key.sub,
                topic: self.topic.to_string(),
                partition: self.partition,
                records: Vec::new(),
                unreadable: None,
                charged: 0,
                deleted: true,
            });
        }
    }

    pub fn remove(&mut self, key: &SubKey) {
        self.subs.remove(key);
    }

    /// Removes a subscription; where it started and the offset it would have been
    /// sent next, if it existed.
    pub fn take(&mut self, key: &SubKey) -> Option<(u64, u64)> {
        self.subs.remove(key).map(|s| (s.from, s.next))
    }

    /// Sends every subscriber what it has credit for, up to `limit` (exclusive), and
    /// what its window has room for, reading at most [`TURN_BYTES`] in all (each turn
    /// starts one subscriber further on, so none waits behind the others for ever).
    /// Returns true when a full mailbox, the full memory budget or the turn's cap left
    /// something for a later try; a subscriber whose own window is full is marked
    /// starved instead and nudges the partition when it has drained.
    pub fn pump(&mut self, log: &PartitionLog, limit: u64) -> bool {
        let mut turn = Turn {
            log,
            limit,
            topic: &self.topic,
            partition: self.partition,
            bytes: 0,
            retry: false,
            gone: Vec::new(),
            unreadable: 0,
            reads: Default::default(),
            share: self.subs.len() > 1,
        };
        let first = self.next_first % self.subs.len().max(1);
        self.next_first = first + 1;
        let (mut later, mut earlier): (Vec<_>, Vec<_>) = self
            .subs
            .iter_mut()
            .enumerate()
            .partition(|(i, _)| *i >= first);
        later.append(&mut earlier);
        for (_, (key, s)) in later {
            if turn.bytes >= TURN_BYTES {
                turn.retry = true;
                break;
            }
            turn.feed(key, s);
        }
        self.unreadable += turn.unreadable;
        let (retry, gone) = (turn.retry, turn.gone);
        for key in gone {
            self.subs.remove(&key);
        }
        retry
    }
}

/// One turn of [`Subscribers::pump`].
struct Turn<'a> {
    log: &'a PartitionLog,
    limit: u64,
    topic: &'a str,
    partition: u32,
    /// Read so far in this turn.
    bytes: u64,
    retry: bool,
    gone: Vec<SubKey>,
    /// Subscriptions ended by unreadable records in this turn.
    unreadable: u64,
    /// The reads of this turn by first offset: the count each asked for and what it
    /// returned. Subscribers that keep up read the same runs of records one after the
    /// other (fan-out); they share the reads instead of reading and checking the same
    /// bytes again each. Bounded as the turn is, by `TURN_BYTES`.
    reads: rustc_hash::FxHashMap<u64, (usize, Vec<Record>)>,
    /// More than one subscriber: only then is a read worth keeping for another.
    share: bool,
}

impl Turn<'_> {
    /// Records from `from`, at most `want` of them and about [`READ_BYTES`]: the last
    /// read's when it answers the same question, else a new read.
    fn read(&mut self, from: u64, want: usize) -> Result<Vec<Record>, StorageError> {
        if let Some((asked, recs)) = self.reads.get(&from) {
            // A read that returned fewer than it asked for was cut by bytes or by the
            // end of the log: it answers any larger count too.
            if want <= *asked || recs.len() < *asked {
                return Ok(recs.iter().take(want).cloned().collect());
            }
        }
        let recs = self.log.read_records(from, READ_BYTES, want)?;
        if self.share {
            self.reads.insert(from, (want, recs.clone()));
        }
        Ok(recs)
    }

    /// Tells the subscriber it reached records that cannot be read, rather than leaving
    /// it waiting in silence; its subscription to this partition ends there.
    fn unreadable(&mut self, key: &SubKey, s: &mut Sub, e: StorageError) {
        error!(topic = %self.topic, partition = self.partition, sub = %key.sub, offset = s.next, error = %e, "subscriber reached unreadable records");
        let (first, last) = match &e {
            StorageError::Damaged { first, last, .. } => (*first, Some(*last)),
            _ => (s.next, None),
        };
        let msg = Deliveries {
            sub: key.sub.clone(),
            topic: self.topic.to_string(),
            partition: self.partition,
            records: Vec::new(),
            unreadable: Some(Unreadable {
                first,
                last,
                reason: e.client_text(),
            }),
            charged: 0,
            deleted: false,
        };
        if let Err(SendError::Full(_)) = s.to.try_send(msg) {
            self.retry = true;
            return;
        }
        self.unreadable += 1;
        self.gone.push(key.clone());
    }

    fn feed(&mut self, key: &SubKey, s: &mut Sub) {
        while s.credit > 0 && s.next < self.limit && self.bytes < TURN_BYTES {
            if let Some(w) = s.window.as_ref().filter(|w| !w.has_room()) {
                w.starve();
                if !w.budget().has_room() {
                    // Output that nobody takes may be what fills it.
                    w.budget().relieve(1);
                    self.retry = true;
                }
                return;
            }
            let want = usize::try_from(s.credit).unwrap_or(usize::MAX);
            let mut recs = match self.read(s.next, want) {
                Ok(r) => r,
                Err(e) => return self.unreadable(key, s, e),
            };
            recs.retain(|r| r.offset < self.limit);
            recs.truncate(usize::try_from(s.credit).unwrap_or(usize::MAX));
            let Some(last) = recs.last().map(|r| r.offset) else {
                return;
            };
            let n = recs.len() as u64;
            let bytes: u64 = recs.iter().map(record_bytes).sum();
            self.bytes += bytes;
            let charged = match &s.window {
                Some(w) => {
                    w.charge(bytes);
                    bytes
                }
                None => 0,
            };
            let msg = Deliveries {
                sub: key.sub.clone(),
                topic: self.topic.to_string(),
                partition: self.partition,
                records: recs,
                unreadable: None,
                charged,
                deleted: false,
            };
            let sent = s.to.try_send(msg);
            if let (Err(_), Some(w)) = (&sent, &s.window) {
                w.release(charged);
            }
            match sent {
                Ok(()) => {
                    s.next = last + 1;
                    s.credit -= n;
                }
                Err(SendError::Full(_)) => {
                    self.retry = true;
                    return;
                }
                Err(SendError::Closed(_)) => {
                    self.gone.push(key.clone());
                    return;
                }
            }
        }
        if self.bytes >= TURN_BYTES {
            self.retry = true;
        }
    }
}
