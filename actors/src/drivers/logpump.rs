//! A driver's log streams, stderr and fd 3 (where the reference library writes WARNING
//! and above, and INFO and DEBUG), logged line by line under the driver's name, within
//! bounds a flooding driver cannot pass: reads are fixed-size chunks, a line keeps at
//! most `line_bytes` (the rest is cut and its size noted), and lines go through a token
//! bucket of `burst` refilled at `lines_per_sec`. Lines over the rate are dropped,
//! counted, and reported in one line a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::{info, warn};

use super::spec::DriverLogLimits;

/// Bytes read from a stream at once.
const CHUNK: usize = 16 << 10;

/// A token bucket of whole lines.
#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(limits: &DriverLogLimits) -> Self {
        Bucket {
            tokens: f64::from(limits.burst),
            rate: f64::from(limits.lines_per_sec),
            burst: f64::from(limits.burst),
            last: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Splits a byte stream into lines of at most `max` bytes, whatever the chunks.
#[derive(Debug)]
pub struct Lines {
    line: Vec<u8>,
    /// Bytes of the current line past `max`, dropped.
    cut: usize,
    max: usize,
}

impl Lines {
    pub fn new(max: usize) -> Self {
        Lines {
            line: Vec::new(),
            cut: 0,
            max,
        }
    }

    /// Feeds `data`; `emit(line, cut)` for every line it completes (without its LF
    /// or CRLF), `cut` being how many bytes were dropped from its end.
    pub fn feed(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8], usize)) {
        while !data.is_empty() {
            let lf = memchr::memchr(b'\n', data);
            let part = &data[..lf.unwrap_or(data.len())];
            let room = self.max.saturating_sub(self.line.len()).min(part.len());
            self.line.extend_from_slice(&part[..room]);
            self.cut += part.len() - room;
            match lf {
                Some(i) => {
                    self.emit(emit);
                    data = &data[i + 1..];
                }
                None => break,
            }
        }
    }

    /// The last line, if the stream ended without its LF.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8], usize)) {
        if !self.line.is_empty() || self.cut > 0 {
            self.emit(emit);
        }
    }

    fn emit(&mut self, emit: &mut impl FnMut(&[u8], usize)) {
        if self.cut == 0 && self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        emit(&self.line, self.cut);
        self.line.clear();
        self.cut = 0;
    }
}

/// One of the two streams.
struct Stream<R> {
    name: &'static str,
    r: R,
    buf: Vec<u8>,
    lines: Lines,
    done: bool,
}

impl<R: AsyncRead + Unpin> Stream<R> {
    fn new(name: &'static str, r: R, limits: &DriverLogLimits) -> Self {
        Stream {
            name,
            r,
            buf: vec![0u8; CHUNK],
            lines: Lines::new(limits.line_bytes),
            done: false,
        }
    }

    /// Logs or drops the lines in what was read (`n` bytes, 0 or an error at the end).
    fn take(&mut self, n: std::io::Result<usize>, gate: &mut Gate) {
        let name = self.name;
        let mut emit = |line: &[u8], cut: usize| gate.pass(name, line, cut);
        match n {
            Ok(n) if n > 0 => self.lines.feed(&self.buf[..n], &mut emit),
            _ => {
                self.lines.finish(&mut emit);
                self.done = true;
            }
        }
    }
}

/// Which lines reach the log, and the count of those that did not.
struct Gate {
    driver: String,
    bucket: Bucket,
    /// Dropped since the last report.
    held: u64,
    dropped: Arc<AtomicU64>,
}

impl Gate {
    fn pass(&mut self, stream: &'static str, line: &[u8], cut: usize) {
        if !self.bucket.take(Instant::now()) {
            self.held += 1;
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let text = String::from_utf8_lossy(line);
        let marker = if cut > 0 {
            format!(" [{cut} bytes cut]")
        } else {
            String::new()
        };
        if stream == "stderr" {
            warn!(driver = %self.driver, stream, "{text}{marker}");
        } else {
            info!(driver = %self.driver, stream, "{text}{marker}");
        }
    }

    fn report(&mut self) {
        if self.held > 0 {
            warn!(driver = %self.driver, dropped = self.held, "driver log lines dropped over log_lines_per_sec");
            self.held = 0;
        }
    }
}

/// Logs both streams until both end. `dropped` counts the lines over the rate.
pub async fn pump(
    stderr: impl AsyncRead + Unpin,
    fd3: impl AsyncRead + Unpin,
    driver: String,
    limits: DriverLogLimits,
    dropped: Arc<AtomicU64>,
) {
    let mut err = Stream::new("stderr", stderr, &limits);
    let mut out = Stream::new("fd3", fd3, &limits);
    let mut gate = Gate {
        driver,
        bucket: Bucket::new(&limits),
        held: 0,
        dropped,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !(err.done && out.done) {
        tokio::select! {
            n = err.r.read(&mut err.buf), if !err.done => err.take(n, &mut gate),
            n = out.r.read(&mut out.buf), if !out.done => out.take(n, &mut gate),
            _ = tick.tick() => gate.report(),
        }
    }
    gate.report();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut lines = Lines::new(max);
        let mut emit = |l: &[u8], cut| out.push((String::from_utf8_lossy(l).into_owned(), cut));
        for c in chunks {
            lines.feed(c, &mut emit);
        }
        lines.finish(&mut emit);
        out
    }

    #[test]
    fn lines_are_cut_whatever_the_chunks() {
        let want = vec![
            ("ab".to_string(), 0),
            ("0123".to_string(), 6),
            ("x".to_string(), 0),
            ("tail".to_string(), 0),
        ];
        let wire: &[u8] = b"ab\r\n0123456789\nx\ntail";
        assert_eq!(split(&[wire], 4), want);
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(split(&bytes, 4), want);
        assert_eq!(split(&[&wire[..5], &wire[5..9], &wire[9..]], 4), want);
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let limits = DriverLogLimits {
            lines_per_sec: 10,
            burst: 3,
            line_bytes: 10,
        };
        let mut b = Bucket::new(&limits);
        let t = Instant::now();
        assert!((0..3).all(|_| b.take(t)));
        assert!(!b.take(t));
        assert!(b.take(t + Duration::from_millis(110)));
        assert!(!b.take(t + Duration::from_millis(120)));
        let later = t + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 3);
    }
}
