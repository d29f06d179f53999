//! [`SessionLoad`]: a session's backlog, read by the router for flow control.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What a session tells the router about its output, without a message.
#[derive(Debug)]
pub struct SessionLoad {
    /// Bytes queued and not yet written.
    pub queued: AtomicUsize,
    /// When output last moved, in ms since the process's first session.
    pub progress_ms: AtomicU64,
}

impl Default for SessionLoad {
    fn default() -> Self {
        SessionLoad {
            queued: AtomicUsize::new(0),
            progress_ms: AtomicU64::new(Self::clock()),
        }
    }
}

impl SessionLoad {
    fn clock() -> u64 {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    /// Records the queue after a write attempt; `moved`: the socket took bytes.
    pub fn update(&self, queued: usize, moved: bool) {
        self.queued.store(queued, Relaxed);
        if moved || queued == 0 {
            self.progress_ms.store(Self::clock(), Relaxed);
        }
    }

    /// Output waits and has not moved for `stall`.
    pub fn stalled(&self, stall: Duration) -> bool {
        self.queued.load(Relaxed) > 0
            && Self::clock().saturating_sub(self.progress_ms.load(Relaxed))
                > stall.as_millis() as u64
    }
}
