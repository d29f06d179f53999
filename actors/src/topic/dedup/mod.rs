//! Idempotent publish: [`DedupIndex`], the `msg_id`s of the topics' recent publishes.
//!
//! A publish that carries a `msg_id` label is looked up per topic: a second publish of
//! the same id within `topics.dedup_window_ms` of the first is answered with the first's
//! partition and offsets and is not stored again. A duplicate that arrives while the
//! first is still being appended waits for it and gets its answer. The index lives in
//! the registry, above routing, so a duplicate goes nowhere a round-robin step would send
//! it: it is answered from the index.
//!
//! The id is stored with the records as their `msg_id` label, so it survives exactly
//! when they do: [`rebuild`] reads the last window of each partition back at start.
//!
//! The index is bounded by `topics.dedup_max_ids` over all topics: when full, the oldest
//! id is forgotten before its window has passed (an eviction, counted).

mod rebuild;
#[cfg(test)]
mod tests;

pub use rebuild::{rebuild, Found, Recovered};

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::registry::Published;
use super::TopicError;

/// The label a publish names its id with, stored with its records.
pub const MSG_ID: &str = "msg_id";

/// The longest `msg_id`, in bytes.
pub const MAX_MSG_ID_BYTES: usize = 256;

/// `topics.dedup_window_ms` and `topics.dedup_max_ids`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupSettings {
    /// How long after a publish its id is remembered; 0 turns dedup off.
    pub window_ms: u64,
    /// Ids remembered at most, over all topics.
    pub max_ids: usize,
}

impl Default for DedupSettings {
    fn default() -> Self {
        DedupSettings {
            window_ms: 120_000,
            max_ids: 200_000,
        }
    }
}

impl DedupSettings {
    pub fn enabled(&self) -> bool {
        self.window_ms > 0
    }
}

/// A `msg_id` that may be used: 1 to [`MAX_MSG_ID_BYTES`] bytes.
pub fn check_msg_id(id: &[u8]) -> Result<(), TopicError> {
    if id.is_empty() || id.len() > MAX_MSG_ID_BYTES {
        return Err(TopicError::InvalidMsgId { len: id.len() });
    }
    Ok(())
}

type Answer = Result<Published, TopicError>;

/// An id as the index keeps it: one allocation, shared by the map and the age order.
pub type Id = Arc<[u8]>;

/// Seeded per process: the keys are chosen by clients, so no flooding one bucket.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What a publish with an id does.
#[derive(Debug)]
pub enum Lookup {
    /// No publish of the id in the window: store it, then [`DedupIndex::settle`].
    Fresh,
    /// The first is stored: this is its answer, marked a duplicate.
    Duplicate(Published),
    /// The first is on its way: its answer comes here once it is settled.
    Wait(oneshot::Receiver<Answer>),
}

#[derive(Debug)]
struct Done {
    published: Published,
    /// When the first was read (its records' timestamp, ms since the epoch).
    at_ms: u64,
    seq: u64,
}

#[derive(Debug, Default)]
struct TopicIds {
    done: HashMap<Id, Done>,
    /// Ids whose first publish is being stored, with the duplicates waiting for it.
    inflight: HashMap<Id, Vec<oneshot::Sender<Answer>>>,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DedupStats {
    /// Ids remembered now (stored publishes in their window).
    pub ids: u64,
    /// Publishes answered as duplicates.
    pub duplicates: u64,
    /// Ids forgotten before their window passed, because the index was full.
    pub evictions: u64,
}

/// The recent ids of every topic, oldest first for expiry and eviction.
#[derive(Debug, Default)]
pub struct DedupIndex {
    settings: DedupSettings,
    topics: HashMap<Arc<str>, TopicIds>,
    /// (topic, id, seq) in the order they were remembered; an entry whose seq no longer
    /// matches (forgotten, or remembered again since) is passed over.
    order: VecDeque<(Arc<str>, Id, u64)>,
    ids: usize,
    seq: u64,
    duplicates: u64,
    evictions: u64,
}

impl DedupIndex {
    pub fn new(settings: DedupSettings) -> Self {
        DedupIndex {
            settings,
            ..DedupIndex::default()
        }
    }

    pub fn settings(&self) -> DedupSettings {
        self.settings
    }

    pub fn stats(&self) -> DedupStats {
        DedupStats {
            ids: self.ids as u64,
            duplicates: self.duplicates,
            evictions: self.evictions,
        }
    }

    /// Looks `id` up for a publish to `topic` read at `now_ms`; a [`Lookup::Fresh`] id
    /// is marked in flight until [`DedupIndex::settle`].
    pub fn begin(&mut self, topic: &str, id: &[u8], now_ms: u64) -> Lookup {
        let window = self.settings.window_ms;
        let ids = match self.topics.get_mut(topic) {
            Some(t) => t,
            None => self.topics.entry(Arc::from(topic)).or_default(),
        };
        if let Some(waiters) = ids.inflight.get_mut(id) {
            let (tx, rx) = oneshot::channel();
            waiters.push(tx);
            return Lookup::Wait(rx);
        }
        if let Some(d) = ids.done.get(id) {
            if now_ms < d.at_ms.saturating_add(window) {
                self.duplicates += 1;
                let mut p = d.published.clone();
                p.duplicate = true;
                return Lookup::Duplicate(p);
            }
        }
        // Copied: the label is a slice of a connection's read buffer, which it would pin.
        ids.inflight.insert(Id::from(id), Vec::new());
        Lookup::Fresh
    }

    /// The first publish of `id` was answered `answer`: remembered (when it was stored)
    /// from `at_ms` on, and every duplicate waiting for it gets the same answer. Returns
    /// the ids evicted to make room.
    pub fn settle(&mut self, topic: &str, id: &[u8], at_ms: u64, answer: &Answer) -> u64 {
        let Some(ids) = self.topics.get_mut(topic) else {
            return 0;
        };
        let Some((key, waiters)) = ids.inflight.remove_entry(id) else {
            return 0;
        };
        if answer.is_ok() {
            self.duplicates += waiters.len() as u64;
        }
        for w in waiters {
            let _ = w.send(answer.clone().map(|mut p| {
                p.duplicate = true;
                p
            }));
        }
        match answer {
            Ok(p) => self.remember(topic, key, p.clone(), at_ms),
            // A failed first leaves nothing behind: a retry is a fresh publish.
            Err(_) => 0,
        }
    }

    /// Remembers a stored publish of `id` (also at start, from the log); returns the
    /// ids evicted to make room.
    pub fn remember(&mut self, topic: &str, id: Id, mut published: Published, at_ms: u64) -> u64 {
        published.duplicate = false;
        let evicted = self.make_room();
        self.seq += 1;
        let seq = self.seq;
        let name = match self.topics.get_key_value(topic) {
            Some((name, _)) => name.clone(),
            None => {
                let name: Arc<str> = Arc::from(topic);
                self.topics.insert(name.clone(), TopicIds::default());
                name
            }
        };
        let ids = self.topics.entry(name.clone()).or_default();
        let old = ids.done.insert(
            id.clone(),
            Done {
                published,
                at_ms,
                seq,
            },
        );
        if old.is_none() {
            self.ids += 1;
        }
        self.order.push_back((name, id, seq));
        evicted
    }

    /// At start: the record at `offset` of `partition`, read at `at_ms`, carries `id`.
    /// Consecutive records with one id and one timestamp are one publish (a batch); a
    /// later publish of the id replaces an earlier one.
    pub fn restore(&mut self, topic: &str, id: Id, partition: u32, offset: u64, at_ms: u64) {
        if let Some(d) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.done.get_mut(&*id))
        {
            let p = &mut d.published;
            if p.partition == partition && p.first_offset + p.count == offset && d.at_ms == at_ms {
                p.count += 1;
                return;
            }
        }
        let published = Published {
            partition,
            first_offset: offset,
            count: 1,
            duplicate: false,
        };
        self.remember(topic, id, published, at_ms);
    }

    /// Forgets ids whose window has passed at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        let window = self.settings.window_ms;
        while let Some((topic, id, seq)) = self.order.front() {
            let Some(d) = self.topics.get(topic).and_then(|t| t.done.get(&**id)) else {
                self.order.pop_front();
                continue;
            };
            if d.seq != *seq {
                self.order.pop_front();
                continue;
            }
            if now_ms < d.at_ms.saturating_add(window) {
                break;
            }
            self.forget_front();
        }
    }

    /// Forgets every id of `topic` (it was deleted); duplicates waiting for a first
    /// publish to it are answered with an error by their dropped senders.
    pub fn forget_topic(&mut self, topic: &str) {
        if let Some(t) = self.topics.remove(topic) {
            self.ids -= t.done.len();
        }
        self.order.retain(|(t, _, _)| &**t != topic);
    }

    /// Removes the oldest remembered id until there is room for one more.
    fn make_room(&mut self) -> u64 {
        let mut evicted = 0;
        while self.ids >= self.settings.max_ids.max(1) {
            if self.forget_front() {
                evicted += 1;
            }
        }
        self.evictions += evicted;
        evicted
    }

    /// Pops the oldest order entry; true when it was a live id (and is now forgotten).
    fn forget_front(&mut self) -> bool {
        let Some((topic, id, seq)) = self.order.pop_front() else {
            // Nothing in order yet ids counted: cannot happen, but never loop on it.
            self.ids = 0;
            return false;
        };
        let Some(t) = self.topics.get_mut(&topic) else {
            return false;
        };
        // One lookup: an entry remembered again since (a newer seq) is rare, and put back.
        match t.done.remove_entry(&*id) {
            Some((key, d)) if d.seq != seq => {
                t.done.insert(key, d);
                false
            }
            Some(_) => {
                self.ids -= 1;
                if t.done.is_empty() && t.inflight.is_empty() {
                    self.topics.remove(&topic);
                }
                true
            }
            None => false,
        }
    }
}
