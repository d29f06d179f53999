//! `switchyard bench topics`: what many topics cost a running broker. It creates N
//! topics over the broker port (`topic create`, many in flight, each answered), then
//! publishes one record to each (every partition opens its segment files), and reports
//! at each step the broker's open descriptors and resident memory; then the latency of
//! acked single-record publishes to one of the N topics, one at a time, so runs with a
//! few topics and with thousands can be compared.

use std::io::Write;
use std::time::Instant;

use bytes::Bytes;
use switchyard_codecs::Envelope;

use super::histogram::Histogram;
use super::process;
use crate::client::{Client, ClientError, Target};

#[derive(Debug, Clone)]
pub struct Options {
    pub topics: u64,
    pub partitions: u32,
    /// Topic names are the prefix and a number from 0.
    pub prefix: String,
    /// Acked publishes measured one at a time.
    pub count: u64,
    /// Publishes made before the measured ones and not measured.
    pub warmup: u64,
    /// Bytes per record.
    pub size: usize,
    /// Requests unanswered at once while creating, filling and deleting.
    pub inflight: u64,
    /// The broker's pid; `None`: the process listening on the broker's port, when that
    /// port is on this machine's loopback.
    pub broker_pid: Option<u32>,
    /// Delete the topics at the end (`topic delete`, an admin request).
    pub delete: bool,
}

/// The broker's descriptors and memory at one step.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub fds: Option<u64>,
    pub rss_kib: Option<u64>,
}

impl Sample {
    fn of(pid: Option<u32>) -> Sample {
        Sample {
            fds: pid.and_then(process::open_fds),
            rss_kib: pid.and_then(process::rss_kib),
        }
    }
}

/// One step: what it was, how long it took, the broker after it.
#[derive(Debug, Clone)]
pub struct Step {
    pub what: &'static str,
    pub secs: f64,
    /// Said after the time (a rate).
    pub note: String,
    pub after: Sample,
}

#[derive(Debug)]
pub struct Report {
    pub o: Options,
    pub pid: Option<u32>,
    pub before: Sample,
    /// Creating, one publish to each topic, and deleting when asked.
    pub steps: Vec<Step>,
    pub latency: Histogram,
    pub latency_secs: f64,
}

impl Report {
    pub fn partitions(&self) -> u64 {
        self.o.topics * u64::from(self.o.partitions)
    }

    /// The broker's memory grown since the start, per partition, in bytes.
    fn per_partition(&self, s: Sample) -> Option<f64> {
        let (a, b) = (s.rss_kib?, self.before.rss_kib?);
        Some((a as f64 - b as f64) * 1024.0 / self.partitions().max(1) as f64)
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("?".into(), |v| v.to_string())
}

fn mb(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1} MB", k as f64 / 1024.0))
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.o;
        writeln!(
            f,
            "topics: {} topics x {} partitions ({} partitions), names {}0.., {} requests in flight",
            o.topics,
            o.partitions,
            self.partitions(),
            o.prefix,
            o.inflight
        )?;
        match self.pid {
            Some(p) => writeln!(f, "broker pid {p}")?,
            None => writeln!(f, "broker pid unknown: no fds or RSS (give --broker-pid)")?,
        }
        writeln!(f, "{:<44} {:>7} {:>10}", "broker", "fds", "RSS")?;
        writeln!(
            f,
            "{:<44} {:>7} {:>10}",
            "before",
            opt(self.before.fds),
            mb(self.before.rss_kib)
        )?;
        for s in &self.steps {
            write!(
                f,
                "{:<44} {:>7} {:>10}",
                format!("{} ({:.2} s{})", s.what, s.secs, s.note),
                opt(s.after.fds),
                mb(s.after.rss_kib)
            )?;
            match self.per_partition(s.after) {
                Some(b) => writeln!(f, "  {:+.2} KB per partition", b / 1000.0)?,
                None => writeln!(f)?,
            }
        }
        writeln!(
            f,
            "acked publish to {}0 among {} topics, one {} B record at a time: {} in {:.2} s, p50 {} us  p99 {} us  p999 {} us  max {} us",
            o.prefix,
            o.topics,
            o.size,
            self.latency.count(),
            self.latency_secs,
            self.latency.quantile(0.5),
            self.latency.quantile(0.99),
            self.latency.quantile(0.999),
            self.latency.max()
        )
    }
}

fn name(o: &Options, i: u64) -> String {
    format!("{}{i}", o.prefix)
}

/// Sends the `n` requests `make` builds (request `i` carries id `i`) with at most
/// `inflight` unanswered, and waits until each is answered with `topic <answer>`. A
/// `topic error` ends it with that error.
fn pipelined(
    c: &mut Client,
    n: u64,
    inflight: u64,
    answer: &str,
    make: impl Fn(u64) -> Envelope,
) -> Result<f64, ClientError> {
    let t = Instant::now();
    let inflight = inflight.max(1);
    let (mut sent, mut answered) = (0u64, 0u64);
    while answered < n {
        // Refill once half the window is free: one write for many requests.
        if sent < n && sent - answered <= inflight / 2 {
            let more = (inflight - (sent - answered)).min(n - sent);
            let batch: Vec<Envelope> = (sent..sent + more)
                .map(|i| make(i).with_label("id", i.to_string()))
                .collect();
            c.send_all(&batch)?;
            sent += more;
        }
        if c.recv()?.is("topic", answer) {
            answered += 1;
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

fn publish(topic: String, value: &Bytes) -> Envelope {
    Envelope::new("topic", "publish")
        .with_label("topic", topic)
        .with_payload(value.clone())
}

/// The broker's pid: the one given, else the listener of its port on loopback.
fn broker_pid(to: &Target, o: &Options) -> Option<u32> {
    if o.broker_pid.is_some() {
        return o.broker_pid;
    }
    let addr = to.addr.resolve().ok()?.into_iter().next()?;
    if !addr.ip().is_loopback() {
        return None;
    }
    process::listening_pid(addr.port())
}

/// Runs the bench; the report is written to `out` as well as returned.
pub fn run(to: &Target, o: &Options, out: &mut impl Write) -> Result<Report, ClientError> {
    let pid = broker_pid(to, o);
    let mut c = Client::connect(to.clone())?;
    let before = Sample::of(pid);
    let mut steps = Vec::new();
    let parts = o.partitions.max(1).to_string();
    let secs = pipelined(&mut c, o.topics, o.inflight, "created", |i| {
        Envelope::new("topic", "create")
            .with_label("topic", name(o, i))
            .with_label("partitions", parts.clone())
    })?;
    steps.push(Step {
        what: "after creating",
        secs,
        note: format!(", {:.0} topics/s", o.topics as f64 / secs.max(1e-9)),
        after: Sample::of(pid),
    });
    let value = Bytes::from(vec![b'x'; o.size]);
    // One publish per partition in turn (round robin, or by the default routing).
    let every = o.topics * u64::from(o.partitions.max(1));
    let secs = pipelined(&mut c, every, o.inflight, "ack", |i| {
        publish(name(o, i % o.topics.max(1)), &value)
    })?;
    steps.push(Step {
        what: "after a publish to each partition",
        secs,
        note: String::new(),
        after: Sample::of(pid),
    });
    let mut latency = Histogram::default();
    let one = name(o, 0);
    let mut t = Instant::now();
    for i in 0..o.warmup + o.count {
        if i == o.warmup {
            t = Instant::now();
        }
        let sent = Instant::now();
        c.send(&publish(one.clone(), &value).with_label("id", i.to_string()))?;
        while !c.recv()?.is("topic", "ack") {}
        if i >= o.warmup {
            latency.record(sent.elapsed().as_micros() as u64);
        }
    }
    let latency_secs = t.elapsed().as_secs_f64();
    if o.delete {
        let secs = pipelined(&mut c, o.topics, o.inflight, "deleted", |i| {
            Envelope::new("topic", "delete").with_label("topic", name(o, i))
        })?;
        steps.push(Step {
            what: "after deleting them",
            secs,
            note: String::new(),
            after: Sample::of(pid),
        });
    }
    let report = Report {
        o: o.clone(),
        pid,
        before,
        steps,
        latency,
        latency_secs,
    };
    write!(out, "{report}").map_err(ClientError::Output)?;
    Ok(report)
}
