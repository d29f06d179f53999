//! A bench producer: one connection, a window of publishes in flight, acks read on a
//! thread of their own. Acks read in one go free the window in one go, so the writer
//! refills it with one write instead of one write per ack.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchyard_codecs::Envelope;

use super::{encode, now_ns, read_loop, Options, Shared};
use crate::bench::histogram::Histogram;

/// Publishes in flight, and the condition the writer waits on for room.
type Window = Arc<(Mutex<u64>, Condvar)>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Publishes `share` messages in batches of `o.batch`; returns once all are acked.
pub(super) fn produce(
    o: &Options,
    share: u64,
    shared: &Arc<Shared>,
    t0: Instant,
) -> Result<(), String> {
    let window: Window = Arc::default();
    let sent_at: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    let batches = share.div_ceil(o.batch);
    let mut p = {
        let (window, sent_at, shared) = (window.clone(), sent_at.clone(), shared.clone());
        Producer::start(o, move |reader| {
            read_acks(reader, batches, &window, &sent_at, &shared, t0)
        })?
    };
    let mut left = share;
    let mut id = 0u64;
    let ids = MsgIds::new(o);
    let mut out = BytesMut::new();
    let started = Instant::now();
    let per_producer_rate = o.rate.map(|r| (r as f64 / o.producers as f64).max(1.0));
    while left > 0 && !shared.stop.load(Relaxed) {
        // At a set rate, wait until the schedule has caught up with what was sent.
        if let Some(rate) = per_producer_rate {
            let due = Duration::from_secs_f64((share - left) as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let room = {
            let (lock_, cv) = &*window;
            let mut w = lock(lock_);
            while *w >= o.inflight && !shared.stop.load(Relaxed) {
                w = cv
                    .wait_timeout(w, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            let mut room = o.inflight.saturating_sub(*w).min(left.div_ceil(o.batch));
            if per_producer_rate.is_some() {
                room = room.min(1);
            }
            *w += room;
            room
        };
        out.clear();
        let mut stamps = lock(&sent_at);
        for _ in 0..room {
            let n = left.min(o.batch);
            let ts = now_ns(t0);
            let payload = items(n, &p.item_head, ts, &p.value_pad);
            stamps.insert(id, ts);
            let e = Envelope::new("topic", "publish")
                .with_label("topic", o.topic.clone())
                .with_label("id", id.to_string())
                .with_label("count", n.to_string());
            encode(&ids.put(e, id).with_payload(payload), &mut out);
            id += 1;
            left -= n;
        }
        drop(stamps);
        p.s.write_all(&out).map_err(|e| e.to_string())?;
    }
    p.finish(shared, t0);
    Ok(())
}

/// A producer's connection, its answers read on a thread of their own, and the parts
/// every message is made of.
struct Producer<T> {
    s: crate::client::tls::Writer,
    answers: std::thread::JoinHandle<T>,
    /// `- <size>\n`: a batch item's head.
    item_head: String,
    /// What follows the send time in each value.
    value_pad: Vec<u8>,
}

impl<T: Send + 'static> Producer<T> {
    fn start(
        o: &Options,
        answers: impl FnOnce(crate::client::tls::Reader) -> T + Send + 'static,
    ) -> Result<Producer<T>, String> {
        let (reader, s) = o.connect()?;
        Ok(Producer {
            s,
            answers: std::thread::spawn(move || answers(reader)),
            item_head: format!("- {}\n", o.size.max(8)),
            value_pad: vec![b'x'; o.size.saturating_sub(8)],
        })
    }

    /// Waits for the answers (`None`: their thread panicked), and marks when this
    /// producer was done.
    fn finish(self, shared: &Shared, t0: Instant) -> Option<T> {
        let got = self.answers.join().ok();
        shared.producers_done_ns.fetch_max(now_ns(t0), Relaxed);
        got
    }
}

/// Reads acks until `batches` have come (or an error); frees the window once per read.
fn read_acks(
    reader: crate::client::tls::Reader,
    batches: u64,
    window: &Window,
    sent_at: &Mutex<HashMap<u64, u64>>,
    shared: &Shared,
    t0: Instant,
) {
    let mut got = 0u64;
    let freed = std::cell::Cell::new(0u64);
    let mut local = Histogram::default();
    let release = || {
        if freed.get() > 0 {
            let (lock_, cv) = &**window;
            *lock(lock_) -= freed.take();
            cv.notify_one();
        }
    };
    read_loop(
        reader,
        |e| {
            if failed(&e, shared) {
                return false;
            }
            if e.is("topic", "ack") {
                let num = |name| {
                    e.labels
                        .get_str(name)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                if let Some(t) = lock(sent_at).remove(&num("id")) {
                    local.record(now_ns(t0).saturating_sub(t) / 1000);
                }
                shared.published.fetch_add(num("count"), Relaxed);
                freed.set(freed.get() + 1);
                got += 1;
            }
            got < batches
        },
        release,
    );
    release();
    lock(&shared.ack_latency).merge(&local);
}

/// Publishes `share` messages, `o.batch` per envelope (one record without `count` at
/// batch 1), none with an `id` but the last: the broker answers only that one (and any
/// error), so the producer writes as fast as the socket takes them. Done when the last
/// publish is acked: its records are then stored, and, from one connection to one
/// partition, every record before them.
pub(super) fn produce_unacked(
    o: &Options,
    share: u64,
    shared: &Arc<Shared>,
    t0: Instant,
) -> Result<(), String> {
    let mut p = {
        let shared = shared.clone();
        Producer::start(o, move |reader| {
            let mut ok = false;
            read_loop(
                reader,
                |e| {
                    if failed(&e, &shared) {
                        return false;
                    }
                    ok = e.is("topic", "ack");
                    !ok
                },
                || {},
            );
            ok
        })?
    };
    let mut left = share;
    let ids = MsgIds::new(o);
    let mut sent = 0u64;
    let mut out = BytesMut::with_capacity(512 << 10);
    while left > 0 && !shared.stop.load(Relaxed) {
        out.clear();
        while left > 0 && out.len() < (256 << 10) {
            let n = left.min(o.batch);
            left -= n;
            let ts = now_ns(t0);
            let mut e = Envelope::new("topic", "publish").with_label("topic", o.topic.clone());
            let payload = if n == 1 {
                let mut v = Vec::with_capacity(o.size.max(8));
                v.extend_from_slice(&ts.to_be_bytes());
                v.extend_from_slice(&p.value_pad);
                v
            } else {
                e = e.with_label("count", n.to_string());
                items(n, &p.item_head, ts, &p.value_pad)
            };
            if left == 0 {
                e = e.with_label("id", "last");
            }
            e = ids.put(e, sent);
            sent += 1;
            encode(&e.with_payload(payload), &mut out);
        }
        p.s.write_all(&out).map_err(|e| e.to_string())?;
    }
    if p.finish(shared, t0).unwrap_or(false) {
        shared.published.fetch_add(share, Relaxed);
    }
    Ok(())
}

/// `--msg-id`: each publish's own `msg_id`, `<random>-<n>`; the random part differs
/// per producer (and per run), so no two publishes of a run share one.
struct MsgIds(Option<String>);

impl MsgIds {
    fn new(o: &Options) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        MsgIds(o.msg_id.then(|| format!("{random:016x}")))
    }

    fn put(&self, e: Envelope, n: u64) -> Envelope {
        match &self.0 {
            Some(prefix) => e.with_label("msg_id", format!("{prefix}-{n}")),
            None => e,
        }
    }
}

/// A publish's `topic error`, made the bench's failure.
fn failed(e: &Envelope, shared: &Shared) -> bool {
    if !e.is("topic", "error") {
        return false;
    }
    shared.fail(format!(
        "publish failed: {}",
        e.labels.get_str("error").unwrap_or("?")
    ));
    true
}

/// The payload of a batch of `n` messages stamped `ts` (see PROTOCOL.md, "Publish").
fn items(n: u64, item_head: &str, ts: u64, value_pad: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity((item_head.len() + 8 + value_pad.len()) * n as usize);
    for _ in 0..n {
        p.extend_from_slice(item_head.as_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(value_pad);
    }
    p
}
