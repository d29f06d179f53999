//! Rate limits for what one misbehaving peer can make the broker log: a repeated
//! warning writes at most one line a second with a count ([`Throttle`]), and a driver's
//! own log lines go through a token bucket ([`Bucket`]).

use std::time::{Duration, Instant};

/// At most one log line per `every` for a repeated event; the events in between are
/// counted and reported with the next line, so a flood costs one line a second.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(Duration::from_secs(1))
    }
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: None,
            held: 0,
        }
    }

    /// Counts one event. `Some(n)`: write a line now for `n` events (this one and the
    /// ones held back since the last line); `None`: stay quiet.
    pub fn hit(&mut self) -> Option<u64> {
        self.held += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count() {
        let mut t = Throttle::new(Duration::from_millis(50));
        assert_eq!(t.hit(), Some(1));
        for _ in 0..99 {
            assert_eq!(t.hit(), None);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.hit(), Some(100));
    }
}
