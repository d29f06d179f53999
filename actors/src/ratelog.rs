//! [`RateLog`]: at most one log line per interval for one kind of repeated event, with
//! a count of the lines left out.
//!
//! A flood of refused connections or failing accepts must not become a flood of log
//! lines (2,500 refused attempts once wrote 1,479 warnings). Keep one `RateLog` per
//! kind of line, in the actor that logs it; no locks, no atomics.
//!
//! ```
//! use std::time::Duration;
//! use switchyard_actors::ratelog::RateLog;
//!
//! let mut refused = RateLog::new(Duration::from_secs(1));
//! for _ in 0..3 {
//!     if let Some(suppressed) = refused.allow() {
//!         // tracing::warn!(suppressed, "connection refused");
//!         assert_eq!(suppressed, 0);
//!     }
//! }
//! // Later, from a periodic timer, so a burst's count is reported even when the
//! // burst has ended: `Some(2)` once the interval has passed.
//! assert_eq!(refused.pending(), 2);
//! ```

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The log-line budget of one kind of event.
#[derive(Debug, Clone)]
pub struct RateLog {
    interval: Duration,
    /// When the last line was let through.
    last: Option<Instant>,
    /// Events left out since that line.
    suppressed: u64,
}

impl RateLog {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        RateLog {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// One line a second.
    pub fn per_second() -> Self {
        Self::new(Duration::from_secs(1))
    }

    /// Counts one event. `Some(n)`: write its line now, saying that `n` more like it
    /// were left out since the previous line; `None`: leave it out (it is counted).
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`RateLog::allow`] at a given moment.
    pub fn allow_at(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// For a periodic timer: `Some(n)` when `n > 0` events were left out and a line
    /// is due (the interval since the last one has passed); the count restarts. A
    /// burst that ends between two lines is reported this way.
    pub fn flush(&mut self) -> Option<u64> {
        self.flush_at(Instant::now())
    }

    /// [`RateLog::flush`] at a given moment.
    pub fn flush_at(&mut self, now: Instant) -> Option<u64> {
        if self.suppressed == 0 {
            return None;
        }
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.interval => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Events left out and not reported yet.
    pub fn pending(&self) -> u64 {
        self.suppressed
    }
}

/// One [`RateLog`] shared by many actors: each connection of a listener logs its own
/// first-frame timeout, but the budget of lines is the listener's.
#[derive(Debug, Clone)]
pub struct SharedRateLog(Arc<Mutex<RateLog>>);

impl SharedRateLog {
    pub fn new(interval: Duration) -> Self {
        SharedRateLog(Arc::new(Mutex::new(RateLog::new(interval))))
    }

    pub fn per_second() -> Self {
        Self::new(Duration::from_secs(1))
    }

    fn lock(&self) -> MutexGuard<'_, RateLog> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`RateLog::allow`].
    pub fn allow(&self) -> Option<u64> {
        self.lock().allow()
    }

    /// See [`RateLog::flush`].
    pub fn flush(&self) -> Option<u64> {
        self.lock().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_left_out() {
        let t0 = Instant::now();
        let s = Duration::from_millis;
        let mut r = RateLog::new(s(1000));
        assert_eq!(r.allow_at(t0), Some(0));
        for i in 1..=9 {
            assert_eq!(r.allow_at(t0 + s(i * 10)), None);
        }
        assert_eq!(r.flush_at(t0 + s(500)), None, "not due yet");
        assert_eq!(r.allow_at(t0 + s(1000)), Some(9));
        assert_eq!(r.allow_at(t0 + s(1001)), None);
        assert_eq!(r.flush_at(t0 + s(2000)), Some(1));
        assert_eq!(r.flush_at(t0 + s(3000)), None, "nothing left out");
        assert_eq!(r.allow_at(t0 + s(3000)), Some(0));
    }
}
