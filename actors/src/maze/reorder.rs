//! The reorder buffer: events arrive out of order and leave strictly by sequence.
//!
//! A ring of `window` slots keyed by `seq - next`. An event further ahead than the
//! window waits in a small overflow list (at most one socket read of events, because
//! the source is not read again while anything waits there).

use std::collections::BTreeMap;

use switchyard_codecs::MazeKind;

/// What a sequence number carries once it is its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Event(MazeKind),
    /// A malformed line whose sequence number parsed: consumed as a no-op.
    Skip,
}

/// Why an entry was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its sequence number was already applied.
    Stale { next: u64 },
    /// Another entry already holds that sequence number; the first one is kept.
    Duplicate,
}

#[derive(Debug)]
pub struct Reorder {
    slots: Vec<Option<Entry>>,
    /// Slot of `next`.
    head: usize,
    next: u64,
    held: usize,
    /// Entries beyond the window, by sequence number.
    overflow: BTreeMap<u64, Entry>,
}

impl Reorder {
    /// A buffer for sequence numbers from 1, holding at most `window` in its ring.
    pub fn new(window: usize) -> Self {
        Reorder {
            slots: vec![None; window.max(1)],
            head: 0,
            next: 1,
            held: 0,
            overflow: BTreeMap::new(),
        }
    }

    /// The next sequence number to be applied.
    pub fn next(&self) -> u64 {
        self.next
    }

    pub fn window(&self) -> usize {
        self.slots.len()
    }

    /// Entries waiting, in the ring and beyond it.
    pub fn held(&self) -> usize {
        self.held + self.overflow.len()
    }

    /// Entries waiting beyond the window: while there are any, the source is paused.
    pub fn overflowing(&self) -> bool {
        !self.overflow.is_empty()
    }

    /// Takes an entry for `seq`.
    pub fn insert(&mut self, seq: u64, entry: Entry) -> Result<(), Refused> {
        if seq < self.next {
            return Err(Refused::Stale { next: self.next });
        }
        let offset = seq - self.next;
        if offset >= self.slots.len() as u64 {
            return match self.overflow.entry(seq) {
                std::collections::btree_map::Entry::Occupied(_) => Err(Refused::Duplicate),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(entry);
                    Ok(())
                }
            };
        }
        let i = (self.head + offset as usize) % self.slots.len();
        if self.slots[i].is_some() {
            return Err(Refused::Duplicate);
        }
        self.slots[i] = Some(entry);
        self.held += 1;
        Ok(())
    }

    /// Takes the entry for `next`, if it is here, and moves on.
    pub fn pop(&mut self) -> Option<(u64, Entry)> {
        let entry = self.slots[self.head].take()?;
        Some(self.advance(entry))
    }

    fn advance(&mut self, entry: Entry) -> (u64, Entry) {
        let seq = self.next;
        self.held -= 1;
        self.head = (self.head + 1) % self.slots.len();
        self.next += 1;
        // The window moved: an overflowing entry may fit now.
        let limit = self.next + self.slots.len() as u64;
        while self
            .overflow
            .first_key_value()
            .is_some_and(|(s, _)| *s < limit)
        {
            if let Some((s, e)) = self.overflow.pop_first() {
                // Cannot be stale or a duplicate: both were checked on insert.
                let _ = self.insert(s, e);
            }
        }
        (seq, entry)
    }

    /// Gives up on the missing `next` (gap timeout); returns the skipped number.
    pub fn skip_missing(&mut self) -> Option<u64> {
        if self.slots[self.head].is_some() || self.held() == 0 {
            return None;
        }
        self.held += 1;
        Some(self.advance(Entry::Skip).0)
    }

    /// Starts a new stream at 1; returns how many waiting entries were dropped.
    pub fn reset(&mut self) -> usize {
        let dropped = self.held();
        self.slots.iter_mut().for_each(|s| *s = None);
        self.overflow.clear();
        self.head = 0;
        self.next = 1;
        self.held = 0;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> Entry {
        Entry::Event(MazeKind::Status { from: n })
    }

    fn drain(r: &mut Reorder) -> Vec<u64> {
        std::iter::from_fn(|| r.pop()).map(|(s, _)| s).collect()
    }

    #[test]
    fn releases_in_sequence() {
        let mut r = Reorder::new(8);
        for s in [3, 1, 2, 5] {
            r.insert(s, ev(s)).unwrap();
        }
        assert_eq!(drain(&mut r), vec![1, 2, 3]);
        assert_eq!(r.next(), 4);
        r.insert(4, Entry::Skip).unwrap();
        assert_eq!(drain(&mut r), vec![4, 5]);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn stale_and_duplicate_are_refused() {
        let mut r = Reorder::new(4);
        r.insert(1, ev(1)).unwrap();
        assert_eq!(r.insert(1, ev(9)), Err(Refused::Duplicate));
        drain(&mut r);
        assert_eq!(r.insert(1, ev(1)), Err(Refused::Stale { next: 2 }));
        r.insert(40, ev(40)).unwrap();
        assert_eq!(r.insert(40, ev(40)), Err(Refused::Duplicate));
    }

    #[test]
    fn overflow_moves_in_as_the_window_advances() {
        let mut r = Reorder::new(4);
        for s in (2..=12).rev() {
            r.insert(s, ev(s)).unwrap();
        }
        assert!(r.overflowing());
        assert_eq!(r.held(), 11);
        r.insert(1, ev(1)).unwrap();
        assert_eq!(drain(&mut r), (1..=12).collect::<Vec<_>>());
        assert!(!r.overflowing());
    }

    #[test]
    fn gaps_can_be_skipped_and_streams_reset() {
        let mut r = Reorder::new(4);
        assert_eq!(r.skip_missing(), None, "nothing waits: nothing to skip");
        r.insert(2, ev(2)).unwrap();
        assert_eq!(r.skip_missing(), Some(1));
        assert_eq!(drain(&mut r), vec![2]);
        r.insert(7, ev(7)).unwrap();
        assert_eq!(r.reset(), 1);
        assert_eq!(r.next(), 1);
        r.insert(1, ev(1)).unwrap();
        assert_eq!(drain(&mut r), vec![1]);
    }
}
