//! A bench consumer: one subscription, credit granted back as records arrive, an
//! optional pace (a slow subscriber), and the topic's creation before a run.

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchyard_codecs::Envelope;

use super::{encode, now_ns, read_loop, Mode, Options, Shared};
use crate::bench::histogram::Histogram;
use switchyard_actors::topic::deliver_batch::deliver_items;

/// The credit a consumer grants when `--credit` is not given: a window's worth of
/// publishes, at least 10000 records. Less leaves the broker waiting for grants at high
/// rates (a grant goes back every half credit), which shows in the latency tail.
pub(super) fn default_credit(o: &Options) -> u64 {
    (o.batch * o.inflight).clamp(10_000, 1_000_000)
}

/// Reads `want` records of the topic (from the start with `bench sub`, else from the
/// end), recording the publish-to-deliver latency of each.
pub(super) fn consume(
    o: &Options,
    want: u64,
    shared: &Arc<Shared>,
    t0: Instant,
    ready: &Barrier,
) -> Result<(), String> {
    // Credit grants are small writes: the connector turns Nagle off.
    let (s, mut writer) = o.connect()?;
    let credit = o.credit.unwrap_or_else(|| default_credit(o)).max(1);
    let from = if o.mode == Mode::Sub {
        "earliest"
    } else {
        "latest"
    };
    let mut out = BytesMut::new();
    encode(
        &Envelope::new("topic", "subscribe")
            .with_label("topic", o.topic.clone())
            .with_label("sub", "bench")
            .with_label("from", from)
            .with_label("credit", credit.to_string())
            .with_label("batch", o.deliver_batch.to_string()),
        &mut out,
    );
    writer.write_all(&out).map_err(|e| e.to_string())?;
    let mut got = 0u64;
    let mut since = 0u64;
    let mut subscribed = false;
    let mut local = Histogram::default();
    let mut paced_from: Option<Instant> = None;
    read_loop(
        s,
        |e| {
            if e.is("topic", "error") {
                shared.fail(format!(
                    "subscribe failed: {}",
                    e.labels.get_str("error").unwrap_or("?")
                ));
                if !subscribed {
                    ready.wait();
                }
                return false;
            }
            if e.is("topic", "subscribed") && !subscribed {
                subscribed = true;
                ready.wait();
            }
            if e.is("topic", "deliver") {
                let items = match deliver_items(&e) {
                    Ok(items) => items,
                    Err(why) => {
                        shared.fail(format!("a delivery could not be read: {why}"));
                        return false;
                    }
                };
                let now = now_ns(t0);
                for item in &items {
                    if let Some(sent) = item.value.get(..8) {
                        let ts = u64::from_be_bytes(sent.try_into().unwrap_or([0; 8]));
                        local.record(now.saturating_sub(ts) / 1000);
                    }
                }
                got += items.len() as u64;
                since += items.len() as u64;
                // A slow subscriber: hold each record until its turn at `consume_rate`.
                if let Some(rate) = o.consume_rate {
                    let start = *paced_from.get_or_insert_with(Instant::now);
                    let due = Duration::from_secs_f64(got as f64 / rate.max(1) as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                if since * 2 >= credit {
                    let mut b = BytesMut::new();
                    encode(
                        &Envelope::new("topic", "credit")
                            .with_label("sub", "bench")
                            .with_label("credit", since.to_string()),
                        &mut b,
                    );
                    let _ = writer.write_all(&b);
                    shared.consumed.fetch_add(since, Relaxed);
                    since = 0;
                }
            }
            got < want && !shared.stop.load(Relaxed)
        },
        || {},
    );
    shared.consumed.fetch_add(since, Relaxed);
    shared
        .e2e_latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .merge(&local);
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
