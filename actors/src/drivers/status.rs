//! What the host knows of each driver: [`DriverState`] and [`DriverStatus`].

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::spec::DriverSpec;

/// A driver's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverState {
    /// Process started, options and start sent, waiting for `state alive`.
    Starting,
    Alive,
    /// Alive, options sent again, waiting for `alive` (or `cold`).
    Reloading,
    /// A start failed; the next one waits for the back-off.
    Backoff,
    /// Given up (restart policy spent, or a required driver failed at start-up).
    Failed,
    /// A remote driver with no connection (before its hello, or after its connection
    /// closed).
    Disconnected,
    Stopping,
    Stopped,
}

impl DriverState {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverState::Starting => "starting",
            DriverState::Alive => "alive",
            DriverState::Reloading => "reloading",
            DriverState::Backoff => "backoff",
            DriverState::Failed => "failed",
            DriverState::Disconnected => "disconnected",
            DriverState::Stopping => "stopping",
            DriverState::Stopped => "stopped",
        }
    }

    /// Can it take RPC calls and commands?
    pub fn serving(self) -> bool {
        matches!(self, DriverState::Alive | DriverState::Reloading)
    }
}

/// One driver, as `ListDrivers` (and the broker's `drivers` RPC) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriverStatus {
    pub name: String,
    pub feature: String,
    pub required: bool,
    pub state: DriverState,
    pub pid: Option<u32>,
    /// Processes started.
    pub starts: u64,
    /// Restarts: crashes, cold restarts, retried starts.
    pub restarts: u64,
    /// Times it reached `alive`.
    pub alive_count: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub last_error: Option<String>,
    /// It connects over TCP (`driver hello`) instead of being spawned.
    pub remote: bool,
    /// A remote driver's connection: the peer address, while connected.
    pub peer: Option<String>,
    /// Its log lines (stderr, fd 3) dropped over `log_lines_per_sec`.
    pub log_lines_dropped: u64,
}

impl DriverStatus {
    pub fn new(spec: &DriverSpec) -> Self {
        DriverStatus {
            name: spec.name.clone(),
            feature: spec.feature(),
            required: spec.required,
            state: DriverState::Starting,
            pid: None,
            starts: 0,
            restarts: 0,
            alive_count: 0,
            frames_in: 0,
            frames_out: 0,
            last_error: None,
            remote: spec.remote,
            peer: None,
            log_lines_dropped: 0,
        }
    }
}

/// Counters that move with every frame: the driver's actor bumps them and the host reads
/// them when asked, since the status the driver sends the host travels only on changes
/// of state.
#[derive(Debug, Default)]
pub struct FrameCounts {
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
}

impl FrameCounts {
    pub fn add_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_out(&self) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counts into `status`.
    pub fn fill(&self, status: &mut DriverStatus) {
        status.frames_in = self.frames_in.load(Ordering::Relaxed);
        status.frames_out = self.frames_out.load(Ordering::Relaxed);
    }
}
