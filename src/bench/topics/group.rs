//! `--group`: the consumers are members of one consumer group, reading each record once
//! between them, committing what they read, and (with `--rebalance`) one more member
//! joining half-way. [`Checker`] counts every partition's offsets as delivered: each
//! must come exactly once, with no gap, through the rebalance.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchyard_codecs::Envelope;

use super::consume::{Event, Subscription};
use super::{encode, Options, Shared};

/// How often a member commits each partition it reads.
const COMMIT_EVERY: Duration = Duration::from_millis(20);

/// Offsets delivered per partition, counted.
#[derive(Debug, Default)]
pub struct Checker {
    seen: Mutex<HashMap<u32, Vec<u8>>>,
}

/// What [`Checker::verdict`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub records: u64,
    /// `(partition, offset)` never delivered, below the partition's highest delivered.
    pub gaps: Vec<(u32, u64)>,
    /// `(partition, offset)` delivered more than once.
    pub duplicates: Vec<(u32, u64)>,
}

impl Checker {
    pub fn record(&self, partition: u32, offsets: impl Iterator<Item = u64>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let v = seen.entry(partition).or_default();
        for o in offsets {
            let i = o as usize;
            if v.len() <= i {
                v.resize(i + 1, 0);
            }
            v[i] = v[i].saturating_add(1);
        }
    }

    /// Every partition's offsets from 0 to its highest delivered, each exactly once?
    pub fn verdict(&self) -> Verdict {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut v = Verdict::default();
        let mut parts: Vec<_> = seen.iter().collect();
        parts.sort();
        for (p, counts) in parts {
            for (o, n) in counts.iter().enumerate() {
                match n {
                    0 => v.gaps.push((*p, o as u64)),
                    1 => v.records += 1,
                    _ => {
                        v.records += 1;
                        v.duplicates.push((*p, o as u64));
                    }
                }
            }
        }
        v
    }
}

/// The members' connections, to wake the idle ones at the end (a `command ping`
/// answered makes their blocking read return).
pub type Wakers = Mutex<Vec<Arc<Mutex<crate::client::tls::Writer>>>>;

/// Pings every member, so the ones waiting for records see that the run is over.
pub(super) fn wake_all(wakers: &Wakers) {
    for w in wakers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = w
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(b"command ping 0 0\n");
    }
}

/// One member: reads until the group has delivered `o.count` records in all.
pub(super) fn member(
    o: &Options,
    group: &str,
    shared: &Arc<Shared>,
    checker: &Checker,
    wakers: &Wakers,
    t0: Instant,
    ready: Option<&Barrier>,
) -> Result<(), String> {
    let (s, writer) = o.connect()?;
    let writer = Arc::new(Mutex::new(writer));
    wakers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(writer.clone());
    let sub = Subscription {
        o,
        shared,
        t0,
        ready,
        labels: vec![("group", group.to_string())],
        credit: super::consume::credit(o),
        what: "group member",
    };
    // Per partition: the next offset to commit, and whether it moved since the last.
    let mut next: HashMap<u32, (u64, bool)> = HashMap::new();
    let mut last_commit = Instant::now();
    let commit = |next: &mut HashMap<u32, (u64, bool)>, only: Option<&[u32]>| {
        let mut b = BytesMut::new();
        for (p, (off, dirty)) in next.iter_mut() {
            if *dirty && only.is_none_or(|l| !l.contains(p)) {
                encode(
                    &Envelope::new("topic", "commit")
                        .with_label("topic", o.topic.clone())
                        .with_label("group", group.to_string())
                        .with_label("partition", p.to_string())
                        .with_label("offset", off.to_string()),
                    &mut b,
                );
                *dirty = false;
            }
        }
        if !b.is_empty() {
            let _ = writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(&b);
        }
    };
    sub.run(s, &writer, |ev, _| {
        match ev {
            Event::Other(e) if e.is("topic", "assigned") => {
                // Partitions taken away are committed at once: their new member waits
                // for that commit (a hand-off), so nothing is read twice.
                let kept: Vec<u32> = e
                    .labels
                    .get_str("partitions")
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|p| p.parse().ok())
                    .collect();
                commit(&mut next, Some(&kept));
            }
            Event::Other(_) => {}
            Event::Delivered(p, items) => {
                checker.record(p, items.iter().map(|i| i.offset));
                if let Some(last) = items.last() {
                    next.insert(p, (last.offset + 1, true));
                }
                if last_commit.elapsed() >= COMMIT_EVERY {
                    commit(&mut next, None);
                    last_commit = Instant::now();
                }
            }
        }
        shared.consumed.load(Relaxed) < o.count && !shared.stop.load(Relaxed)
    })?;
    commit(&mut next, None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_planted_gaps_and_duplicates() {
        let c = Checker::default();
        c.record(0, 0..10);
        c.record(1, [0, 1, 2].into_iter());
        assert_eq!(
            c.verdict(),
            Verdict {
                records: 13,
                ..Verdict::default()
            }
        );
        c.record(1, [4, 2].into_iter()); // 3 missing, 2 twice
        c.record(0, [9].into_iter());
        let v = c.verdict();
        assert_eq!(v.records, 14);
        assert_eq!(v.gaps, [(1, 3)]);
        assert_eq!(v.duplicates, [(0, 9), (1, 2)]);
    }
}
