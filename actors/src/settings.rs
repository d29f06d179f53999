//! What listeners and connections are told by the configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_codecs::Limits;

/// What a connection does when its queued output would pass its byte budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowConsumer {
    /// Drop the queued output and close the connection, logging why.
    #[default]
    Disconnect,
    /// Stop reading the connection's input once its output reaches half the budget,
    /// until that output has drained: TCP backpressure on a peer that writes faster
    /// than it reads.
    Block,
}

/// As the config spells it.
impl std::fmt::Display for SlowConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlowConsumer::Disconnect => "disconnect",
            SlowConsumer::Block => "block",
        })
    }
}

/// Per-connection bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub limits: Limits,
    /// Bytes of output a connection may hold that the peer has not yet taken.
    pub output_buffer_bytes: usize,
    /// Close a connection with no traffic either way for this long; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Close a connection that has sent no complete frame within this long of being
    /// accepted, so idle peers cannot hold the connection slots; `None`: never.
    pub first_frame_timeout: Option<Duration>,
    pub slow_consumer: SlowConsumer,
    /// Requests (publishes) a connection may have waiting for an answer; past it, its
    /// input is not read until answers come back.
    pub max_inflight: usize,
    /// A connection that has read nothing for this long gives back its read buffer
    /// (and its spare output room): an idle connection holds no buffer.
    pub buffer_release: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            limits: Limits::default(),
            output_buffer_bytes: 4 << 20,
            idle_timeout: None,
            first_frame_timeout: None,
            slow_consumer: SlowConsumer::Disconnect,
            max_inflight: 1024,
            buffer_release: Duration::from_secs(1),
        }
    }
}

/// One TCP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// The listener's name in the tree (`listener:broker`).
    pub name: String,
    /// The tree kind of the actors it starts (`connection`, `session`, `source`).
    pub child_kind: &'static str,
    pub max_connections: usize,
    /// Open connections one peer address may have (loopback included).
    pub max_connections_per_ip: usize,
    /// A refused peer is sent a `state refused` envelope saying why before it is
    /// closed (the broker port; the maze ports speak no envelopes).
    pub refusal_notice: bool,
    /// Peer networks admitted; empty: every peer. Others are closed at once and
    /// counted as `auth_failures_total{port,reason="not_allowed"}`.
    pub allow: Vec<crate::auth::Cidr>,
    pub connection: ConnectionSettings,
}
