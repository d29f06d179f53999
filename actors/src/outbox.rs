//! A connection's queued output, bounded by a byte budget.
//!
//! Output is a queue of chunks, not one contiguous buffer: small frames are copied
//! into a tail chunk that grows with the backlog (up to [`CHUNK`]), large ones (a batch
//! of deliveries) join the queue as they are, without a copy. A backlog of megabytes
//! therefore never reallocates and copies itself as it grows, and what it holds is
//! close to what it queued; queued chunks leave in one `writev(2)` per batch.
//!
//! The budget is never exceeded by [`Outbox::push`]: a push that would pass it is
//! refused, and the caller applies the slow-consumer policy. Output that is paced
//! elsewhere (topic deliveries, bounded by the receiver's memory window) is queued
//! with [`Outbox::push_paced`], which never refuses.
//!
//! What was pushed under the budget is output the peer did not ask for and cannot
//! read again; the outbox knows how much of it is still queued ([`Outbox::unasked`]),
//! because only a holder of such output is worth closing when memory runs short.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// The largest tail chunk small frames are copied into.
pub const CHUNK: usize = 64 << 10;

/// The smallest tail chunk: an idle connection's answer to a ping stays small.
const MIN_CHUNK: usize = 512;

/// A frame at least this large is queued as its own chunk rather than copied.
const OWN_CHUNK: usize = 8 << 10;

/// Most chunks handed to one `writev(2)`.
pub const MAX_SLICES: usize = 64;

#[derive(Debug, Default)]
pub struct Outbox {
    /// Full chunks, oldest first.
    chunks: VecDeque<Bytes>,
    /// The chunk small frames are appended to; after every chunk in `chunks`.
    tail: BytesMut,
    len: usize,
    budget: usize,
    peak: usize,
    /// Bytes ever queued, and ever written: positions in the output stream.
    pushed: u64,
    drained: u64,
    /// Where budgeted (unasked) output lies in the stream, oldest first, as
    /// `[start, end)` runs not yet written.
    unasked_runs: VecDeque<(u64, u64)>,
    unasked: usize,
}

/// The push would pass the budget; nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub queued: usize,
    pub budget: usize,
}

impl Outbox {
    pub fn new(budget: usize) -> Self {
        Outbox {
            budget,
            ..Outbox::default()
        }
    }

    /// Queues a copy of `bytes` unless that would pass the budget.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Full> {
        self.fits(bytes.len())?;
        self.mark_unasked(bytes.len());
        if bytes.len() >= OWN_CHUNK {
            self.push_chunk(Bytes::copy_from_slice(bytes));
        } else {
            self.copy_in(bytes);
        }
        Ok(())
    }

    /// The next `n` bytes pushed are unasked output.
    fn mark_unasked(&mut self, n: usize) {
        let (start, end) = (self.pushed, self.pushed + n as u64);
        match self.unasked_runs.back_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.unasked_runs.push_back((start, end)),
        }
        self.unasked += n;
    }

    /// Bytes of unasked output (pushed under the budget) still queued.
    pub fn unasked(&self) -> usize {
        self.unasked
    }

    /// Queues `bytes` unless that would pass the budget, without copying large ones.
    pub fn push_owned(&mut self, bytes: Bytes) -> Result<(), Full> {
        self.fits(bytes.len())?;
        self.mark_unasked(bytes.len());
        self.push_paced(bytes);
        Ok(())
    }

    /// Queues `bytes` whatever the budget says: for output whose amount is bounded
    /// before it gets here.
    pub fn push_paced(&mut self, bytes: Bytes) {
        if bytes.len() >= OWN_CHUNK {
            self.push_chunk(bytes);
        } else {
            self.copy_in(&bytes);
        }
    }

    fn fits(&self, n: usize) -> Result<(), Full> {
        if self.len + n > self.budget {
            return Err(Full {
                queued: self.len,
                budget: self.budget,
            });
        }
        Ok(())
    }

    fn copy_in(&mut self, bytes: &[u8]) {
        if self.tail.capacity() - self.tail.len() < bytes.len() {
            self.seal_tail();
            // The tail grows with the backlog, so a quiet connection keeps a small one
            // and a busy one copies into few chunks.
            let want = self.len.clamp(MIN_CHUNK, CHUNK).max(bytes.len());
            self.tail = BytesMut::with_capacity(want);
        }
        self.tail.extend_from_slice(bytes);
        self.grew(bytes.len());
    }

    fn push_chunk(&mut self, bytes: Bytes) {
        let n = bytes.len();
        self.seal_tail();
        self.chunks.push_back(bytes);
        self.grew(n);
    }

    /// Moves what the tail holds to the queue, so later chunks go after it.
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let full = self.tail.split().freeze();
            self.chunks.push_back(full);
        }
    }

    fn grew(&mut self, n: usize) {
        self.pushed += n as u64;
        self.len += n;
        self.peak = self.peak.max(self.len);
    }

    /// Fills `slices` with the oldest queued bytes, in order; returns how many it
    /// filled.
    pub fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for chunk in self.chunks.iter().map(|c| &c[..]).chain([&self.tail[..]]) {
            if n == slices.len() {
                break;
            }
            if !chunk.is_empty() {
                slices[n] = IoSlice::new(chunk);
                n += 1;
            }
        }
        n
    }

    /// The oldest queued chunk (empty when nothing is queued).
    pub fn front(&self) -> &[u8] {
        self.chunks.front().map_or(&self.tail[..], |c| &c[..])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// The most ever queued at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Marks `n` bytes as written. Written chunks are freed at once, and a drained
    /// tail that grew large is released, so a burst does not stay resident for the
    /// connection's whole life.
    pub fn consume(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        self.drained += n as u64;
        while let Some(run) = self.unasked_runs.front_mut() {
            if run.0 >= self.drained {
                break;
            }
            let end = run.1.min(self.drained);
            self.unasked -= (end - run.0) as usize;
            if run.1 <= self.drained {
                self.unasked_runs.pop_front();
            } else {
                run.0 = self.drained;
            }
        }
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                self.tail.advance(n);
                break;
            };
            if n < front.len() {
                front.advance(n);
                break;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
        if self.len == 0 && self.tail.capacity() > CHUNK {
            self.tail = BytesMut::new();
        }
    }

    /// Frees the tail chunk when nothing is queued (a quiet connection keeps no room).
    pub fn release_spare(&mut self) {
        if self.len == 0 {
            self.tail = BytesMut::new();
        }
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.tail = BytesMut::new();
        self.len = 0;
        self.drained = self.pushed;
        self.unasked_runs.clear();
        self.unasked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(o: &mut Outbox) -> Vec<u8> {
        let mut out = Vec::new();
        while !o.is_empty() {
            let mut s = [IoSlice::new(&[]); MAX_SLICES];
            let k = o.slices(&mut s);
            // Write at most 3 bytes at a time, across chunk edges.
            let mut took = 0;
            for sl in &s[..k] {
                let want = (3 - took).min(sl.len());
                out.extend_from_slice(&sl[..want]);
                took += want;
                if took == 3 {
                    break;
                }
            }
            o.consume(took);
        }
        out
    }

    #[test]
    fn knows_how_much_unasked_output_is_queued() {
        let mut o = Outbox::new(1 << 20);
        o.push_paced(Bytes::from_static(b"aaaa"));
        o.push(b"uu").unwrap();
        o.push_owned(Bytes::from(vec![b'u'; 10_000])).unwrap();
        o.push_paced(Bytes::from_static(b"bbb"));
        o.push(b"vvvvv").unwrap();
        assert_eq!(o.unasked(), 10_007);
        o.consume(3); // paced only
        assert_eq!(o.unasked(), 10_007);
        o.consume(2); // the last paced byte, then one unasked
        assert_eq!(o.unasked(), 10_006);
        o.consume(10_001); // the rest of the first run
        assert_eq!(o.unasked(), 5);
        o.consume(4); // "bbb" and one of "vvvvv"
        assert_eq!(o.unasked(), 4);
        o.push(b"ww").unwrap();
        assert_eq!(o.unasked(), 6);
        o.clear();
        assert_eq!(o.unasked(), 0);
        o.push(b"x").unwrap();
        o.consume(1);
        assert_eq!((o.unasked(), o.len()), (0, 0));
    }

    #[test]
    fn never_passes_the_budget() {
        let mut o = Outbox::new(10);
        assert!(o.push(b"123456").is_ok());
        assert_eq!(
            o.push(b"12345"),
            Err(Full {
                queued: 6,
                budget: 10
            })
        );
        assert!(o.push(b"1234").is_ok());
        assert_eq!(o.len(), 10);
        o.consume(4);
        assert_eq!(o.front(), b"561234");
        assert_eq!(o.peak(), 10);
    }

    #[test]
    fn keeps_order_across_copied_and_owned_chunks() {
        let mut o = Outbox::new(1 << 20);
        let big = Bytes::from(vec![b'b'; OWN_CHUNK + 5]);
        let mut want = Vec::new();
        for i in 0..50u8 {
            let small = [b'a' + (i % 26); 7];
            o.push(&small).unwrap();
            want.extend_from_slice(&small);
            if i % 10 == 0 {
                o.push_owned(big.clone()).unwrap();
                want.extend_from_slice(&big);
            }
        }
        assert_eq!(o.len(), want.len());
        assert_eq!(drain(&mut o), want);
        assert!(o.is_empty());
    }

    #[test]
    fn paced_output_may_pass_the_budget_but_pushes_then_wait() {
        let mut o = Outbox::new(16);
        o.push_paced(Bytes::from_static(&[1; 40]));
        assert_eq!(o.len(), 40);
        assert!(o.push(b"x").is_err());
        o.consume(40);
        assert!(o.push(b"x").is_ok());
    }

    #[test]
    fn a_backlog_holds_about_what_it_queued() {
        let mut o = Outbox::new(64 << 20);
        for _ in 0..(4 << 20) / 100 {
            o.push(&[7; 100]).unwrap();
        }
        let held: usize = o.chunks.iter().map(|c| c.len()).sum::<usize>() + o.tail.capacity();
        assert!(held < o.len() + CHUNK, "held {held} for {}", o.len());
        let mut s = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(o.slices(&mut s), MAX_SLICES);
        o.consume(o.len());
        assert!(o.chunks.is_empty() && o.tail.capacity() <= CHUNK);
    }
}
