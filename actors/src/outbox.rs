//! A connection's queued output, bounded by a byte budget.
//!
//! Frames are appended between writes and leave in one `write(2)` per batch. The
//! budget is never exceeded: a push that would pass it is refused, and the caller
//! applies the slow-consumer policy.

use bytes::{Buf, BytesMut};

/// Capacity an empty outbox keeps for the next burst.
const KEEP_CAPACITY: usize = 64 << 10;

#[derive(Debug)]
pub struct Outbox {
    buf: BytesMut,
    budget: usize,
    peak: usize,
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
            buf: BytesMut::new(),
            budget,
            peak: 0,
        }
    }

    /// Queues `bytes` unless that would pass the budget.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Full> {
        if self.buf.len() + bytes.len() > self.budget {
            return Err(Full {
                queued: self.buf.len(),
                budget: self.budget,
            });
        }
        self.buf.extend_from_slice(bytes);
        self.peak = self.peak.max(self.buf.len());
        Ok(())
    }

    /// The bytes waiting to be written.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// The most ever queued at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Marks `n` bytes as written. A drained buffer that grew large is released, so
    /// a burst does not stay resident for the connection's whole life.
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        }
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(o.pending(), b"561234");
        assert_eq!(o.peak(), 10);
    }
}
