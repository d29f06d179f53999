//! [`Cursor`]: where a subscription stream is, as its SSE event ids carry it and a client
//! gives it back (`Last-Event-ID`, gRPC `after`): `P:O[,P:O…]`, the last offset delivered
//! on each partition that delivered anything, partitions ascending. One partition is
//! `P:O`, the id format of a single-partition stream.

use std::collections::BTreeMap;
use std::fmt;

use super::error::ApiError;

/// Partitions a cursor may name: a header or field naming more is refused rather than
/// turned into that many subscriptions.
const MAX_ENTRIES: usize = 65_536;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(BTreeMap<u32, u64>);

impl Cursor {
    /// Parses `P:O[,P:O…]`; empty (or only spaces) is the empty cursor.
    pub fn parse(s: &str) -> Result<Cursor, ApiError> {
        let s = s.trim();
        let mut out = BTreeMap::new();
        if s.is_empty() {
            return Ok(Cursor(out));
        }
        for part in s.split(',') {
            let bad = || {
                ApiError::invalid(format!(
                    "a stream position is partition:offset[,partition:offset…], not `{s}`"
                ))
            };
            let (p, o) = part.trim().split_once(':').ok_or_else(bad)?;
            let p: u32 = p.parse().map_err(|_| bad())?;
            let o: u64 = o.parse().map_err(|_| bad())?;
            if out.insert(p, o).is_some() {
                return Err(ApiError::invalid(format!(
                    "a stream position names partition {p} twice"
                )));
            }
            if out.len() > MAX_ENTRIES {
                return Err(ApiError::invalid(
                    "a stream position names too many partitions",
                ));
            }
        }
        Ok(Cursor(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `offset` of `partition` was delivered.
    pub fn advance(&mut self, partition: u32, offset: u64) {
        self.0.insert(partition, offset);
    }

    /// Forgets every partition but `partition` (a one-partition stream's ids name only
    /// its own).
    pub fn keep_only(&mut self, partition: u32) {
        self.0.retain(|p, _| *p == partition);
    }

    /// Where each partition it names resumes: the offset after the one delivered.
    pub fn resume(&self) -> BTreeMap<u32, u64> {
        self.0
            .iter()
            .map(|(p, o)| (*p, o.saturating_add(1)))
            .collect()
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (p, o)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}:{o}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_resumes_after_each_offset() {
        let mut c = Cursor::default();
        assert_eq!(c.to_string(), "");
        c.advance(2, 7);
        c.advance(0, 41);
        c.advance(2, 8);
        assert_eq!(c.to_string(), "0:41,2:8");
        assert_eq!(Cursor::parse("0:41, 2:8").unwrap(), c);
        assert_eq!(
            c.resume().into_iter().collect::<Vec<_>>(),
            [(0, 42), (2, 9)]
        );
        assert!(Cursor::parse(" ").unwrap().is_empty());
        c.keep_only(2);
        assert_eq!(c.to_string(), "2:8");
    }

    #[test]
    fn refuses_what_is_not_a_position() {
        for bad in ["7", "a:1", "1:b", "1:2,", "1:2,1:3", "-1:2", "1:-2"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }
}
