//! `switchyard bench maze`: a load generator and checker for the follower maze, in the
//! manner of the official harness.
//!
//! It connects every client and sends its id, waits [`SETTLE`], streams the events in
//! shuffled batches from one thread, and reads every client from another, checking each
//! notification against the expected sequence and content as it arrives.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::histogram::Histogram;
use super::progress::{si, Progress};
use super::rss::peak_rss_kib;
use super::workload::{Expected, Rng, Workload};

/// Time between the last client's id line and the first event, so the broker has
/// registered every client (the protocol has no acknowledgement).
pub const SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct Options {
    pub total_events: u64,
    pub concurrency: usize,
    pub users: u32,
    pub max_batch: u32,
    pub seed: u64,
    /// How long a client waits for its next expected notification.
    pub timeout: Duration,
    pub event_addr: SocketAddr,
    pub client_addr: SocketAddr,
    /// The broker's pid, to report its peak RSS.
    pub broker_pid: Option<u32>,
    pub progress: bool,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub failure: Option<String>,
    pub events: u64,
    pub notifications: u64,
    pub expected_notifications: u64,
    pub elapsed: Duration,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub peak_rss_kib: Option<u64>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn notifications_per_sec(&self) -> f64 {
        self.notifications as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.failure {
            None => writeln!(f, "PASS")?,
            Some(why) => writeln!(f, "FAIL: {why}")?,
        }
        writeln!(
            f,
            "events            {} in {:.2} s: {:.0} events/s",
            self.events,
            self.elapsed.as_secs_f64(),
            self.events_per_sec()
        )?;
        writeln!(
            f,
            "notifications     {} of {} expected: {:.0} notifications/s",
            self.notifications,
            self.expected_notifications,
            self.notifications_per_sec()
        )?;
        writeln!(
            f,
            "latency (sent to read)  p50 {} us  p99 {} us  p999 {} us",
            self.p50_us, self.p99_us, self.p999_us
        )?;
        match self.peak_rss_kib {
            Some(k) => writeln!(f, "broker peak RSS   {:.1} MB", k as f64 / 1024.0),
            None => writeln!(f, "broker peak RSS   unknown (pass --broker-pid)"),
        }
    }
}

/// Why the bench could not run at all (a failed check is a FAIL report instead).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot connect to {what} at {addr}: {source}")]
    Connect {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared between the sender, the readers and the progress line.
struct Shared {
    start: Instant,
    /// Microseconds after `start` at which each sequence number was sent.
    sent_at: Vec<AtomicU32>,
    sent: AtomicU64,
    received: AtomicU64,
    /// Microseconds after `start` of the last notification read.
    last_read_us: AtomicU64,
    failure: Mutex<Option<String>>,
    failed: AtomicBool,
}

impl Shared {
    fn fail(&self, why: String) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(why);
        }
        self.failed.store(true, Relaxed);
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// Runs the whole benchmark against a broker already listening.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    let work = Workload::generate(
        opts.seed,
        opts.total_events,
        opts.concurrency,
        opts.users,
        opts.max_batch,
    );
    if opts.progress {
        let m = work.mix;
        eprintln!(
            "[bench] {} events (B {} F {} U {} P {} S {}), {} clients of {} users, {} notifications expected",
            opts.total_events, m.broadcast, m.follow, m.unfollow, m.private, m.status, work.clients.len(), opts.users, work.total_expected()
        );
    }
    let shared = Arc::new(Shared {
        start: Instant::now(),
        sent_at: (0..=opts.total_events).map(|_| AtomicU32::new(0)).collect(),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        last_read_us: AtomicU64::new(0),
        failure: Mutex::new(None),
        failed: AtomicBool::new(false),
    });
    let work = Arc::new(work);

    // Clients first, each with its id line.
    let mut sockets = Vec::with_capacity(work.clients.len());
    for &user in &work.clients {
        let mut s = TcpStream::connect(opts.client_addr).map_err(|source| BenchError::Connect {
            what: "the maze client port",
            addr: opts.client_addr,
            source,
        })?;
        s.write_all(format!("{user}\r\n").as_bytes())?;
        s.set_nonblocking(true)?;
        sockets.push(s);
    }
    std::thread::sleep(SETTLE);

    let readers = {
        let (work, shared, timeout) = (work.clone(), shared.clone(), opts.timeout);
        std::thread::spawn(move || read_all(sockets, &work, &shared, timeout))
    };
    let source = TcpStream::connect(opts.event_addr).map_err(|source| BenchError::Connect {
        what: "the maze event port",
        addr: opts.event_addr,
        source,
    })?;
    let t0 = shared.now_us();
    let sender = {
        let (work, shared, seed) = (work.clone(), shared.clone(), opts.seed);
        std::thread::spawn(move || send_all(source, &work, &shared, seed))
    };

    let expected_total = work.total_expected();
    let mut bar = Progress::new("notifications", expected_total);
    while !readers.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        if opts.progress {
            let sent = shared.sent.load(Relaxed);
            bar.tick(
                shared.received.load(Relaxed),
                &format!(
                    "sent {}/{} events",
                    si(sent as f64),
                    si(opts.total_events as f64)
                ),
            );
        }
    }
    bar.finish();
    let hist = readers.join().unwrap_or_default();
    match sender.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => shared.fail(format!("event source: {e}")),
        Err(_) => shared.fail("event source thread panicked".into()),
    }
    let elapsed_us = shared.last_read_us.load(Relaxed).saturating_sub(t0).max(1);
    let failure = shared
        .failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Report {
        failure,
        events: opts.total_events,
        notifications: shared.received.load(Relaxed),
        expected_notifications: expected_total,
        elapsed: Duration::from_micros(elapsed_us),
        p50_us: hist.quantile(0.5),
        p99_us: hist.quantile(0.99),
        p999_us: hist.quantile(0.999),
        peak_rss_kib: opts.broker_pid.and_then(peak_rss_kib),
    })
}

/// Streams the events in batches, each shuffled and written with one `write`.
fn send_all(
    mut source: TcpStream,
    work: &Workload,
    shared: &Shared,
    seed: u64,
) -> std::io::Result<()> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut order: Vec<u64> = Vec::new();
    let mut next = 1u64;
    for &size in &work.batches {
        order.clear();
        order.extend(next..next + u64::from(size));
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        buf.clear();
        let now = shared.now_us() as u32;
        for &seq in &order {
            work.events[seq as usize - 1].write(seq, &mut buf);
            buf.extend_from_slice(b"\r\n");
            shared.sent_at[seq as usize].store(now, Relaxed);
        }
        source.write_all(&buf)?;
        next += u64::from(size);
        shared.sent.store(next - 1, Relaxed);
        if shared.failed.load(Relaxed) {
            break;
        }
    }
    Ok(())
}

/// Reads every client on one thread and checks each line as it comes.
fn read_all(
    sockets: Vec<TcpStream>,
    work: &Arc<Workload>,
    shared: &Arc<Shared>,
    timeout: Duration,
) -> Histogram {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            shared.fail(format!("cannot start the reader runtime: {e}"));
            return Histogram::default();
        }
    };
    let local = tokio::task::LocalSet::new();
    let hist = std::rc::Rc::new(std::cell::RefCell::new(Histogram::default()));
    for (c, s) in sockets.into_iter().enumerate() {
        let (work, shared, hist) = (work.clone(), shared.clone(), hist.clone());
        local.spawn_local(async move {
            if let Err(why) = read_client(c, s, &work, &shared, &hist, timeout).await {
                shared.fail(why);
            }
        });
    }
    rt.block_on(local);
    let h = hist.borrow().clone();
    h
}

async fn read_client(
    c: usize,
    s: TcpStream,
    work: &Workload,
    shared: &Shared,
    hist: &std::cell::RefCell<Histogram>,
    timeout: Duration,
) -> Result<(), String> {
    let user = work.clients[c];
    let mut s = tokio::net::TcpStream::from_std(s).map_err(|e| format!("client {user}: {e}"))?;
    let mut expected = Expected::new(&work.expected[c]);
    let mut want = expected.next();
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0usize;
    let mut line = Vec::with_capacity(64);
    while let Some(seq) = want {
        if shared.failed.load(Relaxed) {
            return Ok(());
        }
        let n = match tokio::time::timeout(timeout, s.read(&mut buf[have..])).await {
            Err(_) => {
                return Err(format!(
                    "client {user}: nothing for {} ms while waiting for seq {seq}",
                    timeout.as_millis()
                ))
            }
            Ok(Err(e)) => {
                return Err(format!(
                    "client {user}: read error while waiting for seq {seq}: {e}"
                ))
            }
            Ok(Ok(0)) => {
                return Err(format!(
                    "client {user}: connection closed while waiting for seq {seq}"
                ))
            }
            Ok(Ok(n)) => n,
        };
        have += n;
        let now = shared.now_us();
        let mut start = 0;
        let mut count = 0u64;
        {
            let mut h = hist.borrow_mut();
            while let Some(i) = memchr::memchr(b'\n', &buf[start..have]) {
                let got = &buf[start..start + i + 1];
                start += i + 1;
                let Some(seq) = want else {
                    return Err(format!(
                        "client {user}: unexpected extra line {:?}",
                        String::from_utf8_lossy(got)
                    ));
                };
                line.clear();
                work.events[seq as usize - 1].write(seq, &mut line);
                line.extend_from_slice(b"\r\n");
                if got != &line[..] {
                    return Err(format!(
                        "client {user}: expected {:?}, got {:?}",
                        String::from_utf8_lossy(&line),
                        String::from_utf8_lossy(got)
                    ));
                }
                let sent = u64::from(shared.sent_at[seq as usize].load(Relaxed));
                h.record(now.saturating_sub(sent));
                count += 1;
                want = expected.next();
            }
        }
        buf.copy_within(start..have, 0);
        have -= start;
        shared.received.fetch_add(count, Relaxed);
        shared.last_read_us.fetch_max(now, Relaxed);
        if have == buf.len() {
            return Err(format!(
                "client {user}: a line longer than {} bytes",
                buf.len()
            ));
        }
        // One read per turn: every client is read as often as the others, as it would
        // be with a thread of its own.
        tokio::task::yield_now().await;
    }
    Ok(())
}
