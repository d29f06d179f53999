//! What the maze actors say to the router.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;

use super::load::SessionLoad;
use super::reorder::Entry;
use super::session::Session;

/// An event source asks to become the one source.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct SourceHello {
    pub id: u64,
    pub peer: SocketAddr,
}

/// The event source has gone.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SourceGone {
    pub id: u64,
}

/// The entries of one socket read. Answered once the router can take more: at once,
/// unless the source has run a whole reorder window ahead.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ()>")]
pub struct EventBatch {
    pub source: u64,
    pub entries: Vec<(u64, Entry)>,
}

/// A user client has sent its id.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Register {
    pub session: u64,
    pub user: u64,
    pub addr: Addr<Session>,
    /// The session's unsent output, kept up to date by the session.
    pub load: Arc<SessionLoad>,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub session: u64,
}

/// The router's state, for tests and the tree.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct RouterStatus {
    pub next_seq: u64,
    pub held: usize,
    pub users: usize,
    pub follows: usize,
    pub sessions: usize,
    pub source_connected: bool,
    pub source_paused: bool,
}

#[derive(Debug, Message)]
#[rtype(result = "RouterStatus")]
pub struct GetStatus;
