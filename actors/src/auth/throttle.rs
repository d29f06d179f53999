//! [`LoginThrottle`]: bad logins from one peer address are answered later and later.
//!
//! The first failure from an address is answered after `base` (1 s by default), each
//! further one after twice the last, up to `cap` (30 s). An address with no failure for
//! `QUIET_FACTOR × base` (5 minutes by default) is forgotten, and so is the address
//! whose last failure is oldest when the table holds `max_entries`, so an attacker
//! with many addresses cannot grow it without bound. A good login forgets its address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Quiet time after which an address's failures are forgotten, in units of `base`.
pub const QUIET_FACTOR: u32 = 300;

/// Addresses remembered at most, by default.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Shared by every connection of a port (cheap to clone).
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    table: Arc<Mutex<HashMap<IpAddr, Record>>>,
    base: Duration,
    cap: Duration,
    quiet: Duration,
    max_entries: usize,
}

impl LoginThrottle {
    pub fn new(base: Duration, cap: Duration) -> LoginThrottle {
        LoginThrottle::with_limits(base, cap, base * QUIET_FACTOR, MAX_ENTRIES)
    }

    pub fn with_limits(
        base: Duration,
        cap: Duration,
        quiet: Duration,
        max_entries: usize,
    ) -> LoginThrottle {
        LoginThrottle {
            table: Arc::default(),
            base,
            cap: cap.max(base),
            quiet,
            max_entries: max_entries.max(1),
        }
    }

    /// Records a bad login from `ip`; returns how long to wait before answering it.
    pub fn failure(&self, ip: IpAddr) -> Duration {
        self.failure_at(ip, Instant::now())
    }

    fn failure_at(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let quiet = self.quiet;
        let fresh = Record {
            failures: 0,
            last: now,
        };
        if !t.contains_key(&ip) && t.len() >= self.max_entries {
            t.retain(|_, r| now.saturating_duration_since(r.last) < quiet);
            if t.len() >= self.max_entries {
                if let Some(oldest) = t.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| *k) {
                    t.remove(&oldest);
                }
            }
        }
        let r = t.entry(ip).or_insert(fresh);
        if now.saturating_duration_since(r.last) >= quiet {
            *r = fresh;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        let doublings = (r.failures - 1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// A good login from `ip`: its failures are forgotten.
    pub fn success(&self, ip: IpAddr) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let t = LoginThrottle::new(Duration::from_secs(1), Duration::from_secs(30));
        let got: Vec<u64> = (0..8).map(|_| t.failure(ip(1)).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30, 30]);
        // Another address starts over.
        assert_eq!(t.failure(ip(2)), Duration::from_secs(1));
    }

    #[test]
    fn success_and_quiet_forget() {
        let t = LoginThrottle::new(Duration::from_millis(10), Duration::from_secs(1));
        let now = Instant::now();
        t.failure_at(ip(1), now);
        assert_eq!(t.failure_at(ip(1), now), Duration::from_millis(20));
        t.success(ip(1));
        assert_eq!(t.failure_at(ip(1), now), Duration::from_millis(10));
        let later = now + Duration::from_millis(10) * QUIET_FACTOR;
        assert_eq!(t.failure_at(ip(1), later), Duration::from_millis(10));
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest() {
        let t = LoginThrottle::with_limits(
            Duration::from_secs(1),
            Duration::from_secs(30),
            Duration::from_secs(3600),
            3,
        );
        let now = Instant::now();
        for n in 1..=3 {
            t.failure_at(ip(n), now + Duration::from_secs(u64::from(n)));
        }
        t.failure_at(ip(1), now + Duration::from_secs(10));
        t.failure_at(ip(4), now + Duration::from_secs(11));
        assert_eq!(t.len(), 3);
        // ip(2) was the oldest and went; ip(1) kept its count.
        assert_eq!(
            t.failure_at(ip(1), now + Duration::from_secs(12)),
            Duration::from_secs(4)
        );
        assert_eq!(
            t.failure_at(ip(2), now + Duration::from_secs(13)),
            Duration::from_secs(1)
        );
    }
}
