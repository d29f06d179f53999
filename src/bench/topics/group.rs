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
use switchyard_actors::topic::deliver_batch::deliver_items;
use switchyard_codecs::Envelope;

use super::{encode, now_ns, read_loop, Options, Shared};
use crate::bench::histogram::Histogram;

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
    let lock = || writer.lock().unwrap_or_else(|p| p.into_inner());
    let credit = o.credit.unwrap_or(10_000).max(1);
    let mut out = BytesMut::new();
    encode(
        &Envelope::new("topic", "subscribe")
            .with_label("topic", o.topic.clone())
            .with_label("sub", "bench")
            .with_label("group", group.to_string())
            .with_label("credit", credit.to_string())
            .with_label("batch", o.deliver_batch.to_string()),
        &mut out,
    );
    lock().write_all(&out).map_err(|e| e.to_string())?;
    // Per partition: the next offset to commit, and whether it moved since the last.
    let mut next: HashMap<u32, (u64, bool)> = HashMap::new();
    let mut last_commit = Instant::now();
    let mut since = 0u64;
    let mut subscribed = false;
    let mut local = Histogram::default();
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
            let _ = lock().write_all(&b);
        }
    };
    read_loop(
        s,
        |e| {
            if e.is("topic", "error") {
                shared.fail(format!(
                    "group member: {}",
                    e.labels.get_str("error").unwrap_or("?")
                ));
                return false;
            }
            if e.is("topic", "subscribed") && !subscribed {
                subscribed = true;
                if let Some(r) = ready {
                    r.wait();
                }
            }
            if e.is("topic", "assigned") {
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
            if e.is("topic", "deliver") {
                let Ok(items) = deliver_items(&e) else {
                    shared.fail("a delivery could not be read".into());
                    return false;
                };
                let p: u32 = e
                    .labels
                    .get_str("partition")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let now = now_ns(t0);
                for item in &items {
                    if let Some(sent) = item.value.get(..8) {
                        let ts = u64::from_be_bytes(sent.try_into().unwrap_or([0; 8]));
                        local.record(now.saturating_sub(ts) / 1000);
                    }
                }
                checker.record(p, items.iter().map(|i| i.offset));
                if let Some(last) = items.last() {
                    next.insert(p, (last.offset + 1, true));
                }
                let n = items.len() as u64;
                since += n;
                shared.consumed.fetch_add(n, Relaxed);
                if since * 2 >= credit {
                    let mut b = BytesMut::new();
                    encode(
                        &Envelope::new("topic", "credit")
                            .with_label("sub", "bench")
                            .with_label("credit", since.to_string()),
                        &mut b,
                    );
                    let _ = lock().write_all(&b);
                    since = 0;
                }
                if last_commit.elapsed() >= COMMIT_EVERY {
                    commit(&mut next, None);
                    last_commit = Instant::now();
                }
            }
            shared.consumed.load(Relaxed) < o.count && !shared.stop.load(Relaxed)
        },
        || {},
    );
    commit(&mut next, None);
    shared
        .e2e_latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .merge(&local);
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
