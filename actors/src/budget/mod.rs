//! The broker-wide memory budget (`broker.memory_limit_bytes`) for buffered input and
//! output, counted in bytes.
//!
//! What is charged: every broker-port connection's read buffer (its capacity), the
//! records of its publishes until they are answered, its queued output, topic records
//! on their way to it (read from a partition, not yet in its output), and the records a
//! gateway stream holds for its client.
//!
//! What happens when it is full (the policy the README declares):
//! - A connection whose read buffer would grow past 64 KiB (a frame larger than one
//!   read) needs room for the whole frame; without it the connection stops reading its
//!   socket and resumes when usage drops below the limit. Up to 64 KiB per connection
//!   is always allowed, so small requests (ping, credit, commits) keep flowing.
//! - Partitions stop reading records for subscribers (paced, nothing is lost) until
//!   usage drops below the limit, or, per subscriber, until its own window drains.
//! - When usage passes the limit and output makes up at least half of the limit, the
//!   holder of the most output (a connection or a gateway stream) is shed: closed as a
//!   slow consumer, one at a time until usage is back under the limit.

use std::collections::HashMap;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use actix::prelude::*;
use serde::Serialize;
use switchyard_codecs::record::Record;
use tokio::sync::Notify;

/// Input a connection may always hold, whatever the budget says.
pub const FREE_INPUT_BYTES: u64 = 64 << 10;

/// Closes a holder of output to bring the budget back under its limit.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shed {
    /// What it held when it was chosen.
    pub held: u64,
    pub limit: u64,
}

/// The budget's figures at one moment (for `/metrics`, the tree and tests).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct BudgetSnapshot {
    pub limit: u64,
    pub in_use: u64,
    /// The most ever in use at once.
    pub peak: u64,
    /// Of `in_use`: queued output and deliveries on their way.
    pub output: u64,
    /// Times a connection stopped reading for want of room.
    pub read_pauses: u64,
    /// Holders closed to bring usage back under the limit.
    pub shed: u64,
}

#[derive(Debug)]
struct Holder {
    window: Weak<Window>,
    shed: Recipient<Shed>,
}

#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    in_use: AtomicU64,
    peak: AtomicU64,
    output: AtomicU64,
    read_pauses: AtomicU64,
    shed: AtomicU64,
    /// Bytes of holders told to shed whose release has not come yet.
    shedding: AtomicU64,
    waiters: AtomicUsize,
    room: Notify,
    holders: Mutex<HashMap<u64, Holder>>,
    next_holder: AtomicU64,
}

impl Default for MemoryBudget {
    /// No limit (for tests and front ends built without a config).
    fn default() -> Self {
        MemoryBudget::new(u64::MAX)
    }
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Self {
        MemoryBudget {
            limit,
            in_use: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            output: AtomicU64::new(0),
            read_pauses: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            shedding: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            room: Notify::new(),
            holders: Mutex::new(HashMap::new()),
            next_holder: AtomicU64::new(1),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn in_use(&self) -> u64 {
        self.in_use.load(Relaxed)
    }

    pub fn has_room(&self) -> bool {
        self.in_use() < self.limit
    }

    pub fn snapshot(&self) -> BudgetSnapshot {
        BudgetSnapshot {
            limit: self.limit,
            in_use: self.in_use(),
            peak: self.peak.load(Relaxed),
            output: self.output.load(Relaxed),
            read_pauses: self.read_pauses.load(Relaxed),
            shed: self.shed.load(Relaxed),
        }
    }

    /// Charges `n` bytes that are already held (they cannot be refused); past the
    /// limit, the largest holder of output is shed.
    pub fn charge(&self, n: u64) {
        if n == 0 {
            return;
        }
        let now = self.in_use.fetch_add(n, SeqCst).saturating_add(n);
        self.peak.fetch_max(now, Relaxed);
        if now > self.limit {
            self.relieve(0);
        }
    }

    /// Charges `n` bytes if they fit under the limit.
    pub fn try_charge(&self, n: u64) -> bool {
        let fits = self
            .in_use
            .fetch_update(SeqCst, SeqCst, |cur| {
                // With nothing else held, even more than the limit is let in (one
                // frame must always be able to pass).
                cur.checked_add(n)
                    .filter(|&next| next <= self.limit || cur == 0)
            })
            .map(|prev| self.peak.fetch_max(prev + n, Relaxed))
            .is_ok();
        if !fits {
            self.relieve(n);
        }
        fits
    }

    pub fn release(&self, n: u64) {
        if n == 0 {
            return;
        }
        let _ = self
            .in_use
            .fetch_update(SeqCst, SeqCst, |cur| Some(cur.saturating_sub(n)));
        if self.waiters.load(SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Counts a connection that stopped reading for want of room.
    pub fn note_pause(&self) {
        self.read_pauses.fetch_add(1, Relaxed);
    }

    /// Resolves once `need` more bytes fit under the limit.
    pub async fn room_for(&self, need: u64) {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, SeqCst);
            }
        }
        self.waiters.fetch_add(1, SeqCst);
        let _w = Waiting(&self.waiters);
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_use().saturating_add(need) <= self.limit {
                return;
            }
            notified.await;
        }
    }

    fn holders(&self) -> MutexGuard<'_, HashMap<u64, Holder>> {
        self.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for `need` more bytes: tells the holder of the most output to close,
    /// unless sheds already under way will make the room, or output is under half of
    /// the limit (then input fills the budget, and input is paced, never shed).
    pub fn relieve(&self, need: u64) {
        let after = self.in_use().saturating_add(need);
        if after.saturating_sub(self.shedding.load(SeqCst)) <= self.limit
            || self.output.load(Relaxed) < self.limit / 2
        {
            return;
        }
        // The windows are upgraded under the lock but dropped after it: the last
        // reference to one may be among them, and its drop takes the lock.
        let candidates: Vec<(u64, Arc<Window>)> = self
            .holders()
            .iter()
            .filter_map(|(id, h)| h.window.upgrade().map(|w| (*id, w)))
            .collect();
        let largest = candidates
            .iter()
            .filter(|(_, w)| w.marked.load(SeqCst) == 0 && w.held() > 0)
            .max_by_key(|(_, w)| w.held());
        let Some((id, w)) = largest else {
            return;
        };
        let Some(h) = self.holders().remove(id) else {
            return;
        };
        let held = w.held();
        w.marked.store(held, SeqCst);
        self.shedding.fetch_add(held, SeqCst);
        if w.closed.load(SeqCst) {
            // It closed meanwhile (and released what it held).
            let marked = w.marked.swap(0, SeqCst);
            let _ = self
                .shedding
                .fetch_update(SeqCst, SeqCst, |cur| Some(cur.saturating_sub(marked)));
            return;
        }
        let sent = h.shed.try_send(Shed {
            held,
            limit: self.limit,
        });
        if sent.is_ok() {
            self.shed.fetch_add(1, Relaxed);
        } else {
            // Its mailbox is full: it stays a candidate for a later try.
            w.marked.store(0, SeqCst);
            let _ = self
                .shedding
                .fetch_update(SeqCst, SeqCst, |cur| Some(cur.saturating_sub(held)));
            self.holders().insert(*id, h);
        }
    }
}

/// Input held by one connection (its read buffer), charged to the budget.
#[derive(Debug)]
pub struct Held {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Held {
    pub fn new(budget: Arc<MemoryBudget>) -> Self {
        Held { budget, bytes: 0 }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// Holds `n` bytes from now on, charged whatever the budget says.
    pub fn force(&mut self, n: u64) {
        if n == self.bytes {
            return;
        }
        if n > self.bytes {
            self.budget.charge(n - self.bytes);
        } else {
            self.budget.release(self.bytes - n);
        }
        self.bytes = n;
    }

    /// Holds `n` bytes if that fits: growing up to `free` is always allowed, past it
    /// only with room in the budget. False: nothing changed.
    pub fn grow(&mut self, n: u64, free: u64) -> bool {
        if n <= self.bytes.max(free) {
            self.force(n);
            return true;
        }
        if self.budget.try_charge(n - self.bytes) {
            self.bytes = n;
            return true;
        }
        false
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// The output one receiver holds (its queued output and the deliveries on their way to
/// it), charged to the budget, with the receiver's own limit: partitions stop feeding
/// it while it is full, and mark it starved so it grants again once it has drained.
#[derive(Debug)]
pub struct Window {
    budget: Arc<MemoryBudget>,
    limit: u64,
    held: AtomicU64,
    peak: AtomicU64,
    starved: AtomicBool,
    closed: AtomicBool,
    /// Bytes it held when it was told to shed (0: not told).
    marked: AtomicU64,
    id: u64,
}

impl Window {
    pub fn new(budget: Arc<MemoryBudget>, limit: u64) -> Arc<Self> {
        let id = budget.next_holder.fetch_add(1, Relaxed);
        Arc::new(Window {
            budget,
            limit,
            held: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            starved: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            marked: AtomicU64::new(0),
            id,
        })
    }

    /// Makes this window a candidate for shedding; `shed` closes its owner.
    pub fn register(self: &Arc<Self>, shed: Recipient<Shed>) {
        self.budget.holders().insert(
            self.id,
            Holder {
                window: Arc::downgrade(self),
                shed,
            },
        );
    }

    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn held(&self) -> u64 {
        self.held.load(SeqCst)
    }

    /// The most it has held at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Relaxed)
    }

    pub fn charge(&self, n: u64) {
        if n == 0 || self.closed.load(SeqCst) {
            return;
        }
        let now = self.held.fetch_add(n, SeqCst) + n;
        self.peak.fetch_max(now, Relaxed);
        self.budget.output.fetch_add(n, SeqCst);
        self.budget.charge(n);
        if self.closed.load(SeqCst) {
            // Closed meanwhile: nobody will release it.
            self.release(n);
        }
    }

    pub fn release(&self, n: u64) {
        let prev = self
            .held
            .fetch_update(SeqCst, SeqCst, |cur| Some(cur.saturating_sub(n)))
            .unwrap_or(0);
        let n = n.min(prev);
        let _ = self
            .budget
            .output
            .fetch_update(SeqCst, SeqCst, |cur| Some(cur.saturating_sub(n)));
        self.budget.release(n);
    }

    /// Whether a partition may send it more now.
    pub fn has_room(&self) -> bool {
        self.held() < self.limit && self.budget.has_room()
    }

    /// A partition held records back for want of room.
    pub fn starve(&self) {
        self.starved.store(true, SeqCst);
    }

    /// True once after partitions held records back and there is room again: the
    /// owner then asks its partitions to go on.
    pub fn take_starved(&self) -> bool {
        self.starved.load(Relaxed) && self.has_room() && self.starved.swap(false, SeqCst)
    }

    /// Its owner stopped: everything it held is released.
    pub fn close(&self) {
        if self.closed.swap(true, SeqCst) {
            return;
        }
        self.release(u64::MAX);
        self.budget.holders().remove(&self.id);
        let marked = self.marked.swap(0, SeqCst);
        let _ = self
            .budget
            .shedding
            .fetch_update(SeqCst, SeqCst, |cur| Some(cur.saturating_sub(marked)));
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.close();
    }
}

/// What a record costs a window: its bytes as stored, near enough.
pub fn record_bytes(r: &Record) -> u64 {
    let labels: usize = r.labels.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    (r.value.len() + r.key.as_ref().map_or(0, |k| k.len()) + labels + 32) as u64
}

#[cfg(test)]
mod tests;
