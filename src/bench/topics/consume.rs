//! A bench consumer: one subscription, credit granted back as records arrive, an
//! optional pace (a slow subscriber), and the topic's creation before a run. The
//! subscription's reading ([`Subscription`]) serves the group members too.

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchyard_codecs::Envelope;

use super::{encode, now_ns, read_loop, Mode, Options, Shared};
use crate::bench::histogram::Histogram;
use crate::client::tls::{Reader, Writer};
use switchyard_actors::topic::deliver_batch::{deliver_items, DeliveredItem};

/// The credit a consumer grants when `--credit` is not given: a window's worth of
/// publishes, at least 10000 records. Less leaves the broker waiting for grants at high
/// rates (a grant goes back every half credit), which shows in the latency tail.
pub(super) fn default_credit(o: &Options) -> u64 {
    (o.batch * o.inflight).clamp(10_000, 1_000_000)
}

/// The credit each consumer grants: `--credit`, else 10000 for a group member and the
/// [`default_credit`] for the others.
pub(super) fn credit(o: &Options) -> u64 {
    let default = match o.group {
        Some(_) => 10_000,
        None => default_credit(o),
    };
    o.credit.unwrap_or(default).max(1)
}

/// What a subscription's reader hands its owner, besides what it handles itself.
pub(super) enum Event<'a> {
    /// An envelope that is neither an error nor a delivery (`subscribed`, `assigned`…).
    Other(&'a Envelope),
    /// The records of one deliver, all of `partition`.
    Delivered(u32, &'a [DeliveredItem]),
}

/// One subscription of a bench consumer or group member.
pub(super) struct Subscription<'a> {
    pub o: &'a Options,
    pub shared: &'a Shared,
    pub t0: Instant,
    /// Waited on once subscribed, or on failing before.
    pub ready: Option<&'a Barrier>,
    /// Labels of the subscribe besides topic, sub, credit and batch (`from`, `group`).
    pub labels: Vec<(&'static str, String)>,
    pub credit: u64,
    /// What a `topic error` is called in the bench's failure.
    pub what: &'static str,
}

impl Subscription<'_> {
    /// Subscribes and reads: each record's publish-to-deliver latency, `shared.consumed`
    /// per deliver, credit granted back every half `credit`. `on` sees each other
    /// envelope and each delivery with the records read so far, and says whether to
    /// read on. The records read in all.
    pub(super) fn run(
        &self,
        s: Reader,
        writer: &Mutex<Writer>,
        mut on: impl FnMut(Event, u64) -> bool,
    ) -> Result<u64, String> {
        let (o, shared) = (self.o, self.shared);
        let write = |b: &[u8]| {
            writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(b)
                .map_err(|e| e.to_string())
        };
        let mut sub = Envelope::new("topic", "subscribe")
            .with_label("topic", o.topic.clone())
            .with_label("sub", "bench");
        for (k, v) in &self.labels {
            sub = sub.with_label(*k, v.clone());
        }
        let mut out = BytesMut::new();
        encode(
            &sub.with_label("credit", self.credit.to_string())
                .with_label("batch", o.deliver_batch.to_string()),
            &mut out,
        );
        write(&out)?;
        let (mut got, mut since) = (0u64, 0u64);
        let mut subscribed = false;
        let mut local = Histogram::default();
        read_loop(
            s,
            |e| {
                if e.is("topic", "error") {
                    shared.fail(format!(
                        "{}: {}",
                        self.what,
                        e.labels.get_str("error").unwrap_or("?")
                    ));
                    if let (false, Some(r)) = (subscribed, self.ready) {
                        r.wait();
                    }
                    return false;
                }
                if e.is("topic", "subscribed") && !subscribed {
                    subscribed = true;
                    if let Some(r) = self.ready {
                        r.wait();
                    }
                }
                if !e.is("topic", "deliver") {
                    return on(Event::Other(&e), got);
                }
                let items = match deliver_items(&e) {
                    Ok(items) => items,
                    Err(why) => {
                        shared.fail(format!("a delivery could not be read: {why}"));
                        return false;
                    }
                };
                let now = now_ns(self.t0);
                for item in &items {
                    if let Some(sent) = item.value.get(..8) {
                        let ts = u64::from_be_bytes(sent.try_into().unwrap_or([0; 8]));
                        local.record(now.saturating_sub(ts) / 1000);
                    }
                }
                let n = items.len() as u64;
                got += n;
                since += n;
                shared.consumed.fetch_add(n, Relaxed);
                let p = e
                    .labels
                    .get_str("partition")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let go_on = on(Event::Delivered(p, &items), got);
                if since * 2 >= self.credit {
                    let mut b = BytesMut::new();
                    encode(
                        &Envelope::new("topic", "credit")
                            .with_label("sub", "bench")
                            .with_label("credit", since.to_string()),
                        &mut b,
                    );
                    let _ = write(&b);
                    since = 0;
                }
                go_on
            },
            || {},
        );
        shared
            .e2e_latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(&local);
        Ok(got)
    }
}

/// Reads `want` records of the topic (from the start with `bench sub`, else from the
/// end), optionally paced at `consume_rate`.
pub(super) fn consume(
    o: &Options,
    want: u64,
    shared: &Arc<Shared>,
    t0: Instant,
    ready: &Barrier,
) -> Result<(), String> {
    // Credit grants are small writes: the connector turns Nagle off.
    let (s, writer) = o.connect()?;
    let from = if o.mode == Mode::Sub {
        "earliest"
    } else {
        "latest"
    };
    let sub = Subscription {
        o,
        shared,
        t0,
        ready: Some(ready),
        labels: vec![("from", from.to_string())],
        credit: credit(o),
        what: "subscribe failed",
    };
    let mut paced_from: Option<Instant> = None;
    let got = sub.run(s, &Mutex::new(writer), |ev, got| {
        // A slow subscriber: hold each record until its turn at `consume_rate`.
        if let (Event::Delivered(..), Some(rate)) = (ev, o.consume_rate) {
            let start = *paced_from.get_or_insert_with(Instant::now);
            let due = Duration::from_secs_f64(got as f64 / rate.max(1) as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        got < want && !shared.stop.load(Relaxed)
    })?;
    if got < want && !shared.stop.load(Relaxed) {
        return Err(format!("a consumer got {got} of {want} records"));
    }
    Ok(())
}

/// Makes sure the topic exists (a subscription to an unknown topic is an error), with
/// `--fsync` as its fsync option when given. A user who may not create topics goes
/// on without (unless `--fsync` asked for an option only a create can set).
pub(super) fn create(o: &Options) -> Result<(), String> {
    let (s, mut w) = o.connect()?;
    let mut b = BytesMut::new();
    let mut env = Envelope::new("topic", "create").with_label("topic", o.topic.clone());
    if let Some(f) = &o.fsync {
        env = env.with_label("fsync", f.clone());
    }
    if let Some(n) = o.partitions {
        env = env.with_label("partitions", n.to_string());
    }
    encode(&env, &mut b);
    w.write_all(&b).map_err(|e| e.to_string())?;
    let mut result = Err("no answer to topic create".to_string());
    read_loop(
        s,
        |e| {
            let why = e.labels.get_str("error").unwrap_or("?");
            result = if e.is("topic", "created") {
                Ok(())
            } else if why.starts_with("permission denied")
                && o.fsync.is_none()
                && o.partitions.is_none()
            {
                // Not an admin: the topic may exist already, or publishing makes it.
                eprintln!("note: {why}; going on with the topic as it is");
                Ok(())
            } else {
                Err(format!(
                    "topic create: {}",
                    e.labels.get_str("error").unwrap_or("?")
                ))
            };
            false
        },
        || {},
    );
    result
}
