//! Broker-wide counters, shared by every actor that updates them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use serde::Serialize;

use crate::budget::MemoryBudget;

/// Counters and gauges; cheap to bump from any actor.
#[derive(Debug, Default)]
pub struct BrokerStats {
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_open: AtomicU64,
    /// Refused because their peer address had `max_connections_per_ip` open (also
    /// counted in `connections_refused`).
    pub connections_refused_per_ip: AtomicU64,
    /// Closed for sending no complete frame within the first-frame deadline.
    pub first_frame_timeouts: AtomicU64,
    /// `accept(2)` failures (out of descriptors, mostly); the listener backs off.
    pub accept_errors: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// `write(2)` calls on client sockets: one per batch, not per frame.
    pub socket_writes: AtomicU64,
    pub malformed_frames: AtomicU64,
    /// Envelopes over `broker.max_frame_bytes`, skipped and answered with an error.
    pub oversize_frames: AtomicU64,
    pub slow_consumer_disconnects: AtomicU64,
    pub idle_timeouts: AtomicU64,
    /// The most output any one connection has held at once.
    pub output_peak_bytes: AtomicU64,
    /// Maze events applied, in sequence.
    pub maze_events: AtomicU64,
    /// Maze notifications queued for clients.
    pub maze_notifications: AtomicU64,
    /// Maze sequence numbers consumed as no-ops (malformed lines).
    pub maze_noops: AtomicU64,
    /// Missing maze sequence numbers skipped after `gap_timeout_ms`.
    pub maze_gaps_skipped: AtomicU64,
    /// Times the maze event source was paused because it ran a whole reorder window ahead.
    pub maze_source_pauses: AtomicU64,
    /// Topic records handed to subscribers (connections and gateway streams).
    pub records_delivered: AtomicU64,
    /// The most any one gateway stream (SSE or gRPC) has held for its client.
    pub stream_buffer_peak_bytes: AtomicU64,
    /// The read buffer sizes in force of the broker-port connections, summed (a quiet
    /// connection's is 0).
    pub read_buffer_bytes: AtomicU64,
    /// The broker-wide budget for buffered input and output (`broker.memory_limit_bytes`).
    pub memory: Arc<MemoryBudget>,
    /// Failed logins and refused operations.
    pub auth: crate::auth::AuthStats,
    /// TLS handshakes done and failed, per port.
    pub tls: crate::tls::TlsStats,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub connections_open: u64,
    pub connections_refused_per_ip: u64,
    pub first_frame_timeouts: u64,
    pub accept_errors: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub socket_writes: u64,
    pub malformed_frames: u64,
    pub oversize_frames: u64,
    pub slow_consumer_disconnects: u64,
    pub idle_timeouts: u64,
    pub output_peak_bytes: u64,
    pub maze_events: u64,
    pub maze_notifications: u64,
    pub maze_noops: u64,
    pub maze_gaps_skipped: u64,
    pub maze_source_pauses: u64,
    pub records_delivered: u64,
    pub stream_buffer_peak_bytes: u64,
    pub read_buffer_bytes: u64,
    pub memory_limit_bytes: u64,
    pub memory_in_use_bytes: u64,
    pub memory_peak_bytes: u64,
    pub memory_output_bytes: u64,
    pub memory_read_pauses: u64,
    pub memory_shed: u64,
}

impl BrokerStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Counters at zero, with a memory budget of `limit` bytes.
    pub fn with_memory_limit(limit: u64) -> Self {
        BrokerStats {
            memory: Arc::new(MemoryBudget::new(limit)),
            ..BrokerStats::default()
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let m = self.memory.snapshot();
        StatsSnapshot {
            connections_accepted: self.connections_accepted.load(Relaxed),
            connections_refused: self.connections_refused.load(Relaxed),
            connections_open: self.connections_open.load(Relaxed),
            connections_refused_per_ip: self.connections_refused_per_ip.load(Relaxed),
            first_frame_timeouts: self.first_frame_timeouts.load(Relaxed),
            accept_errors: self.accept_errors.load(Relaxed),
            frames_in: self.frames_in.load(Relaxed),
            frames_out: self.frames_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            socket_writes: self.socket_writes.load(Relaxed),
            malformed_frames: self.malformed_frames.load(Relaxed),
            oversize_frames: self.oversize_frames.load(Relaxed),
            slow_consumer_disconnects: self.slow_consumer_disconnects.load(Relaxed),
            idle_timeouts: self.idle_timeouts.load(Relaxed),
            output_peak_bytes: self.output_peak_bytes.load(Relaxed),
            maze_events: self.maze_events.load(Relaxed),
            maze_notifications: self.maze_notifications.load(Relaxed),
            maze_noops: self.maze_noops.load(Relaxed),
            maze_gaps_skipped: self.maze_gaps_skipped.load(Relaxed),
            maze_source_pauses: self.maze_source_pauses.load(Relaxed),
            records_delivered: self.records_delivered.load(Relaxed),
            stream_buffer_peak_bytes: self.stream_buffer_peak_bytes.load(Relaxed),
            read_buffer_bytes: self.read_buffer_bytes.load(Relaxed),
            memory_limit_bytes: m.limit,
            memory_in_use_bytes: m.in_use,
            memory_peak_bytes: m.peak,
            memory_output_bytes: m.output,
            memory_read_pauses: m.read_pauses,
            memory_shed: m.shed,
        }
    }
}
