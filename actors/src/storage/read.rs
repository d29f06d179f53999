//! Reading a log: records in offset order, and unreadable offsets reported as a
//! [`StorageError::Damaged`] range a reader can skip, never passed over in silence.

use switchyard_codecs::record::{self, Record};
use tracing::error;

use super::log::PartitionLog;
use super::scan::{self, Damage};
use super::segment::{self, StorageError};

impl PartitionLog {
    /// Records from `from` on, in offset order with no gaps, up to about `max_bytes`
    /// (at least one record when any is there). `from` below the start offset reads
    /// from the start. A read that starts at unreadable offsets is
    /// [`StorageError::Damaged`] with the range; one that reaches them stops before.
    pub fn read(&self, from: u64, max_bytes: usize) -> Result<Vec<Record>, StorageError> {
        self.read_past(from, max_bytes, usize::MAX, 8)
    }

    /// [`PartitionLog::read`], stopping at `max_records` too: a read costs what it
    /// returns, not `max_bytes` of records decoded and dropped.
    pub fn read_records(
        &self,
        from: u64,
        max_bytes: usize,
        max_records: usize,
    ) -> Result<Vec<Record>, StorageError> {
        self.read_past(from, max_bytes, max_records.max(1), 8)
    }

    /// Where records stamped `ts_ms` or later may start: the base of the oldest segment
    /// whose newest record is that recent (the active one at the latest). Reading from
    /// here finds every such record without reading older segments.
    pub fn offset_since(&self, ts_ms: u64) -> u64 {
        let last = self.segments.len().saturating_sub(1);
        self.segments
            .iter()
            .enumerate()
            .find(|(i, s)| *i == last || s.last_timestamp >= ts_ms)
            .map_or(self.next_offset, |(_, s)| s.base)
    }

    /// [`PartitionLog::read`], trying again (at most `tries` times) after finding bad
    /// bytes that lose no offset, now that the read can start past them.
    fn read_past(
        &self,
        from: u64,
        max_bytes: usize,
        max_records: usize,
        tries: u32,
    ) -> Result<Vec<Record>, StorageError> {
        let mut expected = from.max(self.start_offset());
        if expected >= self.next_offset {
            return Ok(Vec::new());
        }
        if let Some(d) = self.known_damage(expected) {
            return Err(damaged(&d));
        }
        let i = self
            .segments
            .partition_point(|s| s.base <= expected)
            .saturating_sub(1);
        let mut out: Vec<Record> = Vec::new();
        let mut budget = max_bytes;
        for (k, seg) in self.segments.iter().enumerate().skip(i) {
            if seg.base > expected {
                // Offsets between segments are missing.
                return self.gap(out, expected, seg.base, seg.base, 0, "segment missing");
            }
            let skip_to = self.skip_to(seg.base, expected);
            let file = seg.file()?;
            let read = segment::read_from(
                seg.view(&file),
                expected,
                skip_to,
                budget,
                max_records - out.len(),
                self.cfg.max_record_bytes,
            )?;
            out.reserve(read.records.len());
            for r in read.records {
                if r.offset != expected {
                    let why = "offsets missing in segment";
                    return self.gap(out, expected, r.offset, seg.base, 0, why);
                }
                budget = budget.saturating_sub(record::encoded_len(&r));
                expected += 1;
                out.push(r);
            }
            if let Some((pos, reason)) = read.bad {
                if !out.is_empty() {
                    return Ok(out);
                }
                let next_base = self
                    .segments
                    .get(k + 1)
                    .map_or(self.next_offset, |s| s.base);
                let d = match scan::resync_at(
                    &seg.path,
                    &file,
                    seg.size,
                    pos + 1,
                    self.cfg.max_record_bytes,
                    expected,
                )? {
                    Some((end, next)) => Damage {
                        first: expected,
                        next,
                        segment: seg.base,
                        pos,
                        end,
                        reason,
                    },
                    None => Damage {
                        first: expected,
                        next: next_base,
                        segment: seg.base,
                        pos,
                        end: seg.size,
                        reason,
                    },
                };
                if d.next == d.first {
                    // Bad bytes, no offset lost: read again, starting past them.
                    self.remember(d);
                    return match tries {
                        0 => Ok(out),
                        _ => self.read_past(from, max_bytes, max_records, tries - 1),
                    };
                }
                let err = damaged(&d);
                self.remember(d);
                return Err(err);
            }
            if budget == 0 || out.len() >= max_records || expected >= self.next_offset {
                break;
            }
        }
        Ok(out)
    }

    /// The records read so far, or (when there are none) the missing offsets
    /// `first..next` as damage.
    fn gap(
        &self,
        out: Vec<Record>,
        first: u64,
        next: u64,
        segment: u64,
        pos: u64,
        why: &str,
    ) -> Result<Vec<Record>, StorageError> {
        if !out.is_empty() {
            return Ok(out);
        }
        let d = Damage {
            first,
            next,
            segment,
            pos,
            end: pos,
            reason: why.to_string(),
        };
        let err = damaged(&d);
        self.remember(d);
        Err(err)
    }

    fn known_damage(&self, offset: u64) -> Option<Damage> {
        self.damage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|d| d.first <= offset && offset < d.next)
            .cloned()
    }

    /// Where a read of `expected` in segment `base` may start: past every bad byte
    /// range known before it.
    fn skip_to(&self, base: u64, expected: u64) -> u64 {
        self.damage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|d| d.segment == base && d.next <= expected && d.end > d.pos)
            .map(|d| d.end)
            .max()
            .unwrap_or(0)
    }

    /// Keeps a damaged range found by a read, reported at ERROR the first time.
    pub(super) fn remember(&self, d: Damage) {
        let mut known = self.damage.lock().unwrap_or_else(|p| p.into_inner());
        if known
            .iter()
            .any(|k| k.segment == d.segment && k.pos == d.pos && k.first == d.first)
        {
            return;
        }
        error!(dir = %self.dir.display(), first = d.first, last = d.next.saturating_sub(1), segment = d.segment, position = d.pos, reason = %d.reason, "unreadable records found");
        known.push(d);
        known.sort_by_key(|d| d.first);
    }
}

fn damaged(d: &Damage) -> StorageError {
    StorageError::Damaged {
        first: d.first,
        last: d.next.saturating_sub(1),
        reason: d.reason.clone(),
    }
}
