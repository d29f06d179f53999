//! `switchyard bench pub | sub | pubsub`: throughput and latency of topics against a
//! running broker, with producers and consumers on threads of their own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio_util::codec::Decoder;

use super::histogram::Histogram;

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
    /// Messages per second across producers; `None`: as fast as acks allow.
    pub rate: Option<u64>,
    pub progress: bool,
}

#[derive(Debug, Default)]
struct Shared {
    published: AtomicU64,
    consumed: AtomicU64,
    ack_latency: Mutex<Histogram>,
    e2e_latency: Mutex<Histogram>,
    failed: Mutex<Option<String>>,
    stop: AtomicBool,
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

/// Reads envelopes from `s` and hands each to `f` until it returns false or EOF.
fn read_loop(mut s: TcpStream, mut f: impl FnMut(Envelope) -> bool) {
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
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn produce(o: &Options, share: u64, shared: &Arc<Shared>, t0: Instant) -> Result<(), String> {
    let mut s = TcpStream::connect(o.broker).map_err(|e| format!("connect {}: {e}", o.broker))?;
    let _ = s.set_nodelay(true);
    let reader = s.try_clone().map_err(|e| e.to_string())?;
    let window = Arc::new((Mutex::new(0u64), std::sync::Condvar::new()));
    let sent_at: Arc<Mutex<std::collections::HashMap<u64, u64>>> = Arc::default();
    let (w2, sa2, sh2, batches) = (
        window.clone(),
        sent_at.clone(),
        shared.clone(),
        share.div_ceil(o.batch),
    );
    let acks = std::thread::spawn(move || {
        let mut got = 0u64;
        read_loop(reader, |e| {
            if e.is("topic", "error") {
                sh2.fail(format!(
                    "publish failed: {}",
                    e.labels.get_str("error").unwrap_or("?")
                ));
                return false;
            }
            if e.is("topic", "ack") {
                let id: u64 = e
                    .labels
                    .get_str("id")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let n: u64 = e
                    .labels
                    .get_str("count")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if let Some(t) = sa2.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
                    sh2.ack_latency
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record((now_ns(t0) - t) / 1000);
                }
                sh2.published.fetch_add(n, Relaxed);
                let (lock, cv) = &*w2;
                *lock.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                cv.notify_one();
                got += 1;
            }
            got < batches
        });
    });
    let value_pad = vec![b'x'; o.size.saturating_sub(8)];
    let item_head = format!("- {}\n", o.size.max(8));
    let mut left = share;
    let mut id = 0u64;
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
        // Fill the window, then write everything in one go.
        let room = {
            let (lock, cv) = &*window;
            let mut w = lock.lock().unwrap_or_else(|p| p.into_inner());
            while *w >= o.inflight {
                w = cv.wait(w).unwrap_or_else(|p| p.into_inner());
            }
            let mut room = (o.inflight - *w).min(left.div_ceil(o.batch));
            if per_producer_rate.is_some() {
                room = room.min(1);
            }
            *w += room;
            room
        };
        out.clear();
        for _ in 0..room {
            let n = left.min(o.batch);
            let ts = now_ns(t0);
            let mut payload = Vec::with_capacity((o.size + 12) * n as usize);
            for _ in 0..n {
                payload.extend_from_slice(item_head.as_bytes());
                payload.extend_from_slice(&ts.to_be_bytes());
                payload.extend_from_slice(&value_pad);
            }
            sent_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, ts);
            encode(
                &Envelope::new("topic", "publish")
                    .with_label("topic", o.topic.clone())
                    .with_label("id", id.to_string())
                    .with_label("count", n.to_string())
                    .with_payload(payload),
                &mut out,
            );
            id += 1;
            left -= n;
        }
        s.write_all(&out).map_err(|e| e.to_string())?;
    }
    let _ = acks.join();
    Ok(())
}

fn consume(
    o: &Options,
    want: u64,
    shared: &Arc<Shared>,
    t0: Instant,
    ready: &std::sync::Barrier,
) -> Result<(), String> {
    let mut s = TcpStream::connect(o.broker).map_err(|e| format!("connect {}: {e}", o.broker))?;
    let credit = (o.batch * o.inflight).clamp(1000, 1_000_000);
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
            .with_label("credit", credit.to_string()),
        &mut out,
    );
    s.write_all(&out).map_err(|e| e.to_string())?;
    let mut writer = s.try_clone().map_err(|e| e.to_string())?;
    let mut got = 0u64;
    let mut since = 0u64;
    let mut subscribed = false;
    let mut local = Histogram::default();
    read_loop(s, |e| {
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
            if e.payload.len() >= 8 {
                let ts = u64::from_be_bytes(e.payload[..8].try_into().unwrap_or([0; 8]));
                local.record(now_ns(t0).saturating_sub(ts) / 1000);
            }
            got += 1;
            since += 1;
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
    });
    shared.consumed.fetch_add(since, Relaxed);
    shared
        .e2e_latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .merge(&local);
    if got < want {
        return Err(format!("a consumer got {got} of {want} records"));
    }
    Ok(())
}

/// Makes sure the topic exists (a subscription to an unknown topic is an error).
fn create(o: &Options) -> Result<(), String> {
    let mut s = TcpStream::connect(o.broker).map_err(|e| format!("connect {}: {e}", o.broker))?;
    let mut b = BytesMut::new();
    encode(
        &Envelope::new("topic", "create").with_label("topic", o.topic.clone()),
        &mut b,
    );
    s.write_all(&b).map_err(|e| e.to_string())?;
    let mut result = Err("no answer to topic create".to_string());
    read_loop(s, |e| {
        result = if e.is("topic", "created") {
            Ok(())
        } else {
            Err(format!(
                "topic create: {}",
                e.labels.get_str("error").unwrap_or("?")
            ))
        };
        false
    });
    result
}

/// Runs the bench and prints its summary; `Err` when it could not complete.
pub fn run(o: &Options, out: &mut impl Write) -> Result<(), String> {
    create(o)?;
    let shared = Arc::new(Shared::default());
    let t0 = Instant::now();
    let consumers = if o.mode == Mode::Pub { 0 } else { o.consumers };
    let ready = Arc::new(std::sync::Barrier::new(consumers + 1));
    let mut handles = Vec::new();
    for _ in 0..consumers {
        let (o, shared, ready) = (o.clone(), shared.clone(), ready.clone());
        handles.push(std::thread::spawn(move || {
            consume(&o, o.count, &shared, t0, &ready)
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
            handles.push(std::thread::spawn(move || produce(&o, share, &shared, t0)));
        }
    } else {
        ready.wait();
    }
    let mut last = Instant::now();
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if o.progress && last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            eprintln!(
                "[bench] {:>5.1} s  published {}  consumed {}",
                start.elapsed().as_secs_f64(),
                shared.published.load(Relaxed),
                shared.consumed.load(Relaxed)
            );
        }
    }
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => shared.fail(e),
            Err(_) => shared.fail("a bench thread panicked".into()),
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
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
    let mb = |n: u64| n as f64 * o.size as f64 / 1e6 / secs;
    writeln!(
        out,
        "{:?}: {} bytes x {} messages, batch {}, {} producers, {} consumers, {} in flight",
        o.mode, o.size, o.count, o.batch, o.producers, consumers, o.inflight
    )
    .map_err(|e| e.to_string())?;
    if o.mode != Mode::Sub {
        let h = shared
            .ack_latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        writeln!(
            out,
            "published  {p} in {secs:.2} s: {:.0} msg/s, {:.1} MB/s",
            p as f64 / secs,
            mb(p)
        )
        .map_err(|e| e.to_string())?;
        writeln!(
            out,
            "ack latency (per publish)  p50 {} us  p99 {} us  p999 {} us",
            h.quantile(0.5),
            h.quantile(0.99),
            h.quantile(0.999)
        )
        .map_err(|e| e.to_string())?;
    }
    if consumers > 0 {
        writeln!(
            out,
            "consumed   {c} in {secs:.2} s: {:.0} msg/s, {:.1} MB/s",
            c as f64 / secs,
            mb(c)
        )
        .map_err(|e| e.to_string())?;
        if o.mode == Mode::PubSub {
            let h = shared
                .e2e_latency
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            writeln!(
                out,
                "end-to-end latency  p50 {} us  p99 {} us  p999 {} us",
                h.quantile(0.5),
                h.quantile(0.99),
                h.quantile(0.999)
            )
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
