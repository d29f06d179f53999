//! switchyard's actors: the supervised tree every part of the broker hangs from.
//!
//! Modules:
//! - [`auth`]: users, logins, permissions and the login throttle.
//! - [`build_info`]: the version, git commit and profile this binary was built from.
//! - [`supervisor`]: the root [`Supervisor`], child specs, the restart policy, and the
//!   [`ChildGuard`] that reports a child's stop *or* panic.
//! - [`tree`]: the actor-tree registry ([`ActorTree`]), printed to the log and served.
//! - [`listener`]: [`Listener`], accepting TCP peers up to `max_connections`.
//! - [`connection`]: [`Connection`], one per peer: framing, replies, budgeted writes.
//! - [`conn_set`]: the live connections of a listener, for limits and draining.
//! - [`outbox`]: a connection's output buffer and its byte budget.
//! - [`socket`]: the socket half every connection-like actor shares.
//! - [`maze`]: the follower maze: [`maze::MazeRouter`], event sources and sessions.
//! - [`settings`]: what the configuration tells listeners and connections.
//! - [`stats`]: broker-wide counters.
//! - [`topic`]: topics and their partitions; [`topic::Partition`] is each log's single writer.
//! - [`storage`]: partition logs on disk (segments, index, recovery, retention).
//! - [`chat`]: chat-ops: adapters, `!command` plugins, trust and flood control.
//! - [`drivers`]: dipper driver processes, RPC between them, the event bus and its rules.
//! - [`gateway`]: the broker over HTTP/JSON and gRPC, with metrics, health and a live page.
//! - [`ratelog`]: [`ratelog::RateLog`], one log line a second for repeated events, with
//!   the count left out.
//! - [`panic_note`]: remembers panic messages so restarts can say why.
//! - [`tls`]: TLS for the broker port and the gateway: reloadable certificates, the
//!   sans-IO session broker-port sockets drive, client identities, handshake counters.
//!
//! Everything runs on one actix Arbiter (see `ARCHITECTURE.md`, performance stance).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod budget;
pub mod build_info;
pub mod chat;
pub mod conn_set;
pub mod connection;
pub mod drivers;
pub mod gateway;
pub mod listener;
pub mod maze;
pub mod outbox;
pub mod panic_note;
pub mod ratelog;
pub mod settings;
pub mod socket;
pub mod stats;
pub mod storage;
pub mod supervisor;
pub mod tls;
pub mod topic;
pub mod tree;

pub use conn_set::ConnectionSet;
pub use connection::Connection;
pub use listener::Listener;
pub use settings::{ConnectionSettings, ListenerSettings, SlowConsumer};
pub use stats::{BrokerStats, StatsSnapshot};
pub use supervisor::{
    ChildContext, ChildGuard, ChildSpec, ChildState, ChildStatus, ExitReason, RestartPolicy,
    Shutdown, Supervisor,
};
pub use tree::{ActorId, ActorTree, TreeEntry, TreeNode};
