//! `switchyard bench pub | sub | pubsub`: throughput and latency of topics against a
//! running broker, with producers and consumers on threads of their own.
//!
//! - [`produce`]: a producer with its window of publishes in flight;
//! - [`consume`]: a consumer granting credit, optionally paced (a slow subscriber),
//!   and the topic's creation.

mod consume;
pub mod group;
mod produce;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio_util::codec::Decoder;

use super::histogram::Histogram;
use super::progress::{si, Progress};
use super::rss::RssSampler;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pub,
    Sub,
    PubSub,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub broker: SocketAddr,
    /// Plain TCP, or TLS (`--tls`).
    pub connector: crate::client::Connector,
    pub topic: String,
    /// Bytes per message (at least 8: the send time rides in the first 8).
    pub size: usize,
    /// Messages in all, across producers.
    pub count: u64,
    /// Messages per publish envelope.
    pub batch: u64,
    pub producers: usize,
    pub consumers: usize,
    /// Publish envelopes in flight per producer (waiting for their ack).
    pub inflight: u64,
    /// Consumers are members of this consumer group (each record read once in all).
    pub group: Option<String>,
    /// The topic is created with this many partitions.
    pub partitions: Option<u32>,
    /// With `group`: one more member joins once half the records are delivered.
    pub rebalance: bool,
    /// Publishes carry no `id` but the last (see [`produce::produce_unacked`]).
    pub no_ack: bool,
    /// Every publish carries a `msg_id` of its own.
    pub msg_id: bool,
    /// Messages per second across producers; `None`: as fast as acks allow.
    pub rate: Option<u64>,
    /// Records a consumer may have outstanding; `None`: a window's worth.
    pub credit: Option<u64>,
    /// Records per second each consumer reads; `None`: as fast as they come.
    pub consume_rate: Option<u64>,
    /// Records per `topic deliver` the consumers ask for (1: one envelope each).
    pub deliver_batch: u64,
    /// The topic's `fsync` option when the bench creates it.
    pub fsync: Option<String>,
    /// The broker's pid, to sample its resident memory during the run.
    pub broker_pid: Option<u32>,
    pub progress: bool,
    /// Logged in on every connection when set (a secured broker).
    pub login: Option<crate::login::Login>,
}

impl Options {
    /// A new connection to the broker as a reader and a writer (plain or TLS), logged
    /// in when `login` is set.
    pub(super) fn connect(
        &self,
    ) -> Result<(crate::client::tls::Reader, crate::client::tls::Writer), String> {
        let (mut r, mut w) = self
            .connector
            .connect_split(self.broker)
            .map_err(|e| format!("connect {}: {e}", self.broker))?;
        if let Some(l) = &self.login {
            crate::login::send_login(&mut w, l)?;
            crate::login::read_login_answer(&mut r)?;
        }
        Ok((r, w))
    }
}

#[derive(Debug, Default)]
struct Shared {
    published: AtomicU64,
    consumed: AtomicU64,
    ack_latency: Mutex<Histogram>,
    e2e_latency: Mutex<Histogram>,
    failed: Mutex<Option<String>>,
    stop: AtomicBool,
    /// When the last producer had all its acks (ns since the bench's t0).
    producers_done_ns: AtomicU64,
}

impl Shared {
    fn fail(&self, why: String) {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
        self.stop.store(true, Relaxed);
    }
}

fn encode(e: &Envelope, out: &mut BytesMut) {
    let _ = e.encode(out);
}

fn now_ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// Reads envelopes from `s` and hands each to `f` until it returns false or EOF;
/// `after` runs once the envelopes of one read are handled.
fn read_loop(mut s: impl Read, mut f: impl FnMut(Envelope) -> bool, mut after: impl FnMut()) {
    let mut codec = FrameCodec::detect(Limits {
        max_frame_bytes: 64 << 20,
        ..Limits::default()
    });
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Envelope(e))) => {
                    if !f(e) {
                        return;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        after();
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Runs the bench and prints its summary; `Err` when it could not complete.
pub fn run(o: &Options, out: &mut impl Write) -> Result<(), String> {
    consume::create(o)?;
    let mut rss = o.broker_pid.map(RssSampler::new);
    let shared = Arc::new(Shared::default());
    let t0 = Instant::now();
    let consumers = if o.mode == Mode::Pub { 0 } else { o.consumers };
    let ready = Arc::new(std::sync::Barrier::new(consumers + 1));
    let mut handles = Vec::new();
    let checker = Arc::new(group::Checker::default());
    let wakers = Arc::new(group::Wakers::default());
    for _ in 0..consumers {
        let (o, shared, ready) = (o.clone(), shared.clone(), ready.clone());
        let (checker, wakers) = (checker.clone(), wakers.clone());
        handles.push(std::thread::spawn(move || match &o.group {
            Some(g) => group::member(&o, g, &shared, &checker, &wakers, t0, Some(&ready)),
            None => consume::consume(&o, o.count, &shared, t0, &ready),
        }));
    }
    if consumers > 0 && o.mode == Mode::PubSub {
        ready.wait();
    }
    let start = Instant::now();
    if o.mode != Mode::Sub {
        for i in 0..o.producers {
            let share =
                o.count / o.producers as u64 + u64::from((i as u64) < o.count % o.producers as u64);
            let (o, shared) = (o.clone(), shared.clone());
            handles.push(std::thread::spawn(move || {
                if o.no_ack {
                    produce::produce_unacked(&o, share, &shared, t0)
                } else {
                    produce::produce(&o, share, &shared, t0)
                }
            }));
        }
    } else {
        ready.wait();
    }
    let (what, total) = match o.mode {
        Mode::Pub => ("acked", o.count),
        _ if o.group.is_some() => ("delivered", o.count),
        _ => ("delivered", o.count * consumers as u64),
    };
    let mut bar = Progress::new(what, total);
    let mut joined = !o.rebalance;
    let mut woken = false;
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(g) = o.group.clone() {
            let delivered = shared.consumed.load(Relaxed);
            if !joined && delivered >= o.count / 2 {
                // The rebalance: a member joins half-way through.
                joined = true;
                let (o, shared, checker, wakers) =
                    (o.clone(), shared.clone(), checker.clone(), wakers.clone());
                handles.push(std::thread::spawn(move || {
                    group::member(&o, &g, &shared, &checker, &wakers, t0, None)
                }));
            }
            if !woken && delivered >= o.count {
                woken = true;
                group::wake_all(&wakers);
            }
        }
        if let Some(r) = rss.as_mut() {
            r.sample();
        }
        if o.progress {
            let (p, c) = (
                shared.published.load(Relaxed),
                shared.consumed.load(Relaxed),
            );
            let mut extra = match o.mode {
                Mode::PubSub => format!("acked {}", si(p as f64)),
                _ => String::new(),
            };
            if let Some(kib) = rss.as_ref().and_then(|r| r.now) {
                extra.push_str(&format!("  broker RSS {:.0} MB", kib as f64 / 1024.0));
            }
            bar.tick(if o.mode == Mode::Pub { p } else { c }, extra.trim_start());
        }
    }
    bar.finish();
    if let Some(r) = rss.as_mut() {
        r.sample();
    }
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => shared.fail(e),
            Err(_) => shared.fail("a bench thread panicked".into()),
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let verdict = o.group.as_ref().map(|_| checker.verdict());
    if let Some(v) = &verdict {
        if !v.gaps.is_empty() || !v.duplicates.is_empty() || v.records != o.count {
            shared.fail(format!(
                "the group's deliveries are wrong: {} records of {}, gaps {:?}, duplicates {:?}",
                v.records,
                o.count,
                &v.gaps[..v.gaps.len().min(10)],
                &v.duplicates[..v.duplicates.len().min(10)]
            ));
        }
    }
    if let Some(why) = shared
        .failed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        return Err(why);
    }
    let (p, c) = (
        shared.published.load(Relaxed),
        shared.consumed.load(Relaxed),
    );
    let mb = |n: u64, secs: f64| n as f64 * o.size as f64 / 1e6 / secs;
    // Producers may finish long before a slow consumer: their rate is over their time.
    let pub_secs = (shared.producers_done_ns.load(Relaxed) as f64 / 1e9
        - start.duration_since(t0).as_secs_f64())
    .clamp(1e-9, secs);
    writeln!(
        out,
        "{:?}: {} bytes x {} messages, batch {}, {} producers, {} consumers, {}{}{}{}",
        o.mode,
        o.size,
        o.count,
        o.batch,
        o.producers,
        consumers,
        if o.no_ack {
            "no acks (publishes without id)".to_string()
        } else {
            format!("{} in flight", o.inflight)
        },
        o.fsync
            .as_ref()
            .map_or(String::new(), |f| format!(", topic fsync {f}")),
        if consumers > 0 {
            format!(
                ", credit {}, {} per deliver",
                consume::credit(o),
                o.deliver_batch
            )
        } else {
            String::new()
        },
        o.consume_rate
            .map_or(String::new(), |r| format!(", consumers paced at {r} msg/s")),
    )
    .map_err(|e| e.to_string())?;
    if o.mode != Mode::Sub {
        writeln!(
            out,
            "published  {p} in {pub_secs:.2} s: {:.0} msg/s, {:.1} MB/s",
            p as f64 / pub_secs,
            mb(p, pub_secs)
        )
        .map_err(|e| e.to_string())?;
        if !o.no_ack {
            writeln!(
                out,
                "ack latency (per publish)  {}",
                quantiles(&shared.ack_latency)
            )
            .map_err(|e| e.to_string())?;
        }
    }
    if consumers > 0 {
        writeln!(
            out,
            "consumed   {c} in {secs:.2} s: {:.0} msg/s, {:.1} MB/s",
            c as f64 / secs,
            mb(c, secs)
        )
        .map_err(|e| e.to_string())?;
        if let (Some(g), Some(v)) = (&o.group, &verdict) {
            writeln!(
                out,
                "group {g}: {} members{}, each record once: {} records, {} gaps, {} duplicates",
                consumers,
                if o.rebalance {
                    " (+1 joined half-way)"
                } else {
                    ""
                },
                v.records,
                v.gaps.len(),
                v.duplicates.len()
            )
            .map_err(|e| e.to_string())?;
        }
        if o.mode == Mode::PubSub {
            writeln!(
                out,
                "end-to-end latency  {}",
                quantiles(&shared.e2e_latency)
            )
            .map_err(|e| e.to_string())?;
        }
    }
    if let Some(r) = rss {
        writeln!(out, "broker RSS  {}", r.summary()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `p50 N us  p99 N us  p999 N us` of a histogram.
fn quantiles(h: &Mutex<Histogram>) -> String {
    let h = h.lock().unwrap_or_else(|p| p.into_inner());
    format!(
        "p50 {} us  p99 {} us  p999 {} us",
        h.quantile(0.5),
        h.quantile(0.99),
        h.quantile(0.999)
    )
}
