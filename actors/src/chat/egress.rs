//! Outbound lines: split UTF-8-safely below the line limit, cut at `reply_lines_max`,
//! and paced per adapter by a token bucket, order kept.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Splits `text` into lines of at most `max_bytes` bytes: at line breaks, then at the
/// last space that fits, else at the last UTF-8 character boundary that fits.
pub fn split_lines(text: &str, max_bytes: usize) -> Vec<String> {
    let max = max_bytes.max(4);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let mut rest = line.trim_end_matches('\r');
        if rest.is_empty() {
            continue;
        }
        while rest.len() > max {
            let mut cut = max;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            // A word that ends right at the limit stays whole; else break at the last space.
            let at = if rest.as_bytes()[cut] == b' ' {
                cut
            } else {
                rest[..cut].rfind(' ').filter(|&i| i > 0).unwrap_or(cut)
            };
            out.push(rest[..at].to_string());
            rest = rest[at..].trim_start_matches(' ');
        }
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out
}

/// Caps `lines` at `max`, replacing the tail with a notice.
pub fn cap_lines(mut lines: Vec<String>, max: usize) -> Vec<String> {
    if lines.len() > max {
        let cut = lines.len() - max.saturating_sub(1);
        lines.truncate(max.saturating_sub(1));
        lines.push(format!(
            "… {cut} more lines cut (chat.reply_lines_max = {max})"
        ));
    }
    lines
}

/// A token bucket: `burst` lines at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct Bucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(burst: u32, per_second: f64) -> Self {
        Bucket {
            burst: f64::from(burst.max(1)),
            per_second,
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_second).min(self.burst);
        self.last = now;
    }

    /// Takes a token if there is one; otherwise how long until there is.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }
}

/// One adapter's outbound queue.
#[derive(Debug)]
pub struct Outbound<T> {
    pub bucket: Bucket,
    pub queue: VecDeque<T>,
    pub max_queue: usize,
    /// A drain is scheduled.
    pub armed: bool,
    pub dropped: u64,
    pub sent: u64,
}

impl<T> Outbound<T> {
    pub fn new(bucket: Bucket, max_queue: usize) -> Self {
        Outbound {
            bucket,
            queue: VecDeque::new(),
            max_queue,
            armed: false,
            dropped: 0,
            sent: 0,
        }
    }

    /// Queues a line; `false` (and counted) when the queue is full.
    pub fn push(&mut self, item: T) -> bool {
        if self.queue.len() >= self.max_queue {
            self.dropped += 1;
            return false;
        }
        self.queue.push_back(item);
        true
    }

    /// Lines that may go now, in order; and when to try again if some must wait.
    pub fn due(&mut self, now: Instant) -> (Vec<T>, Option<Duration>) {
        let mut out = Vec::new();
        while !self.queue.is_empty() {
            match self.bucket.take(now) {
                Ok(()) => out.extend(self.queue.pop_front()),
                Err(wait) => return (out, Some(wait)),
            }
        }
        self.sent += out.len() as u64;
        (out, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_spaces_and_char_boundaries() {
        assert_eq!(split_lines("a\nb\r\n\nc", 10), ["a", "b", "c"]);
        assert_eq!(
            split_lines("hello there world", 11),
            ["hello there", "world"]
        );
        let s = "é".repeat(10); // 20 bytes
        let parts = split_lines(&s, 7);
        assert!(parts.iter().all(|p| p.len() <= 7));
        assert_eq!(parts.concat(), s);
        let long = "x".repeat(1000);
        assert!(split_lines(&long, 400).iter().all(|p| p.len() <= 400));
    }

    #[test]
    fn caps_with_a_notice() {
        let lines: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        let capped = cap_lines(lines.clone(), 3);
        assert_eq!(capped.len(), 3);
        assert_eq!(capped[..2], ["0", "1"]);
        assert!(capped[2].contains("3 more lines cut"));
        assert_eq!(cap_lines(lines, 5).len(), 5);
    }

    #[test]
    fn bucket_paces_after_the_burst() {
        let t0 = Instant::now();
        let mut o = Outbound::new(Bucket::new(2, 10.0), 100);
        for i in 0..5 {
            assert!(o.push(i));
        }
        let (now, wait) = o.due(t0);
        assert_eq!(now, [0, 1]);
        let wait = wait.unwrap();
        assert!(wait <= Duration::from_millis(101));
        let (next, _) = o.due(t0 + Duration::from_millis(100));
        assert_eq!(next, [2]);
        let (rest, none) = o.due(t0 + Duration::from_secs(1));
        assert_eq!(rest, [3, 4]);
        assert!(none.is_none());
    }
}
