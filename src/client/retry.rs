//! Reconnecting: `sub` and `events` outlive a broker restart. The first retry waits
//! 100 ms, each next one twice as long, up to 5 s, for ever; a connection that got as
//! far as its subscription starts the next outage at 100 ms again.

use std::time::Duration;

use super::ClientError;

const FIRST: Duration = Duration::from_millis(100);
const MOST: Duration = Duration::from_secs(5);

/// The waits between attempts.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The connection works again: the next outage starts over.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }

    /// The wait before the next attempt (and doubles the one after it).
    pub fn next_wait(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(MOST);
        now
    }
}

/// Runs `session` until it ends without a transient error; after a transient one
/// (the broker closed, restarts, cannot be reached) says so on stderr, waits and runs
/// it again, unless `reconnect` is off. `session` resets the back-off once its
/// connection works (its subscription was answered).
pub fn with_reconnect<T>(
    reconnect: bool,
    what: &str,
    mut session: impl FnMut(&mut Backoff) -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let mut backoff = Backoff::default();
    loop {
        match session(&mut backoff) {
            Err(e) if reconnect && e.is_transient() => {
                let wait = backoff.next_wait();
                eprintln!(
                    "switchyard {what}: {e}; reconnecting in {} ms",
                    wait.as_millis()
                );
                std::thread::sleep(wait);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_five_seconds_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..8).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_wait().as_millis(), 100);
    }
}
