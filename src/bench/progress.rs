//! The progress display of `switchyard bench`: a bar redrawn in place on a terminal,
//! a plain line per second otherwise (so a log file stays readable).

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const WIDTH: usize = 30;

#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    total: u64,
    start: Instant,
    last: Option<Instant>,
    last_done: u64,
    tty: bool,
}

impl Progress {
    /// A display of `done` out of `total` `what`s (events, messages…) on stderr.
    pub fn new(what: &'static str, total: u64) -> Progress {
        Progress {
            what,
            total: total.max(1),
            start: Instant::now(),
            last: None,
            last_done: 0,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Redraws when due: every 100 ms on a terminal, every second otherwise. `extra`
    /// is appended (other counters of the run).
    pub fn tick(&mut self, done: u64, extra: &str) {
        let period = Duration::from_millis(if self.tty { 100 } else { 1000 });
        let now = Instant::now();
        let since = self.last.unwrap_or(self.start);
        if now.duration_since(since) < period {
            return;
        }
        let rate = done.saturating_sub(self.last_done) as f64
            / now.duration_since(since).as_secs_f64().max(1e-9);
        self.last = Some(now);
        self.last_done = done;
        let line = self.line(done, rate, now.duration_since(self.start), extra);
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    /// Clears the bar, so the summary starts on a clean line.
    pub fn finish(&mut self) {
        if self.tty && self.last.is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }

    fn line(&self, done: u64, rate: f64, elapsed: Duration, extra: &str) -> String {
        let frac = (done as f64 / self.total as f64).clamp(0.0, 1.0);
        let filled = (frac * WIDTH as f64).round() as usize;
        let mut s = String::with_capacity(120);
        let _ = write!(
            s,
            "[bench] [{}{}] {:>3.0}%  {}/{} {}  {}/s  {:.1} s",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            frac * 100.0,
            si(done as f64),
            si(self.total as f64),
            self.what,
            si(rate),
            elapsed.as_secs_f64()
        );
        if !extra.is_empty() {
            let _ = write!(s, "  {extra}");
        }
        s
    }
}

/// 1234567 as `1.23M`: short enough for a status line.
pub fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_fraction_done() {
        let p = Progress::new("msgs", 200);
        let half = p.line(100, 1500.0, Duration::from_millis(2500), "acked 90");
        assert_eq!(
            half,
            format!(
                "[bench] [{}{}]  50%  100/200 msgs  1.5k/s  2.5 s  acked 90",
                "#".repeat(15),
                "-".repeat(15)
            )
        );
        let over = p.line(500, 0.0, Duration::ZERO, "");
        assert!(over.starts_with(&format!("[bench] [{}] 100%", "#".repeat(30))));
    }

    #[test]
    fn si_units() {
        assert_eq!(si(999.0), "999");
        assert_eq!(si(1500.0), "1.5k");
        assert_eq!(si(3_000_000.0), "3.00M");
        assert_eq!(si(2.5e9), "2.50G");
    }
}
