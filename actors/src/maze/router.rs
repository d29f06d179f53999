//! [`MazeRouter`]: applies events in sequence order and fans them out.
//!
//! Per input batch (one socket read of the event source) the router applies every
//! event it can, appends each notification to its recipient's buffer, and then sends
//! each recipient session one `Bytes` chunk: one actor message and one `write(2)` per
//! client per batch. It never waits on a session: a full mailbox evicts the session.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{BufMut, Bytes, BytesMut};
use rustc_hash::FxHashMap;
use serde::Serialize;
use switchyard_codecs::maze::write_event;
use switchyard_codecs::MazeKind;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::graph::{Graph, User};
use super::reorder::{Entry, Refused, Reorder};
use super::session::{Deliver, Evict, Session};
use super::settings::{MazeSettings, OnNewSource};
use crate::stats::BrokerStats;
use crate::supervisor::{ChildContext, ChildGuard, ChildSpec, Shutdown};
use crate::tree::TreeEntry;

/// Where listeners find the router that runs now (it changes when it restarts).
pub type RouterSlot = Arc<Mutex<Option<Addr<MazeRouter>>>>;

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

#[derive(Debug)]
struct Registration {
    user: User,
    user_id: u64,
    addr: Addr<Session>,
    load: Arc<SessionLoad>,
    /// Since when its output has been over half its budget.
    high_since: Option<Instant>,
}

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
    fn stalled(&self, stall: Duration) -> bool {
        self.queued.load(Relaxed) > 0
            && Self::clock().saturating_sub(self.progress_ms.load(Relaxed))
                > stall.as_millis() as u64
    }
}

pub struct MazeRouter {
    settings: MazeSettings,
    reorder: Reorder,
    graph: Graph,
    sessions: FxHashMap<u64, Registration>,
    /// Sessions of each user.
    by_user: Vec<Vec<u64>>,
    /// Users with at least one session (broadcast recipients).
    online: Vec<User>,
    /// Pending output per user, and the users that have some.
    out: Vec<BytesMut>,
    dirty: Vec<User>,
    /// The text of the event being applied, with CRLF.
    line: BytesMut,
    source: Option<(u64, SocketAddr)>,
    /// The source's batch answer, held back while it is a window ahead.
    paused: Option<oneshot::Sender<()>>,
    stalled_since: Option<Instant>,
    /// Since when the source has been held back by the clients' backlog.
    paused_since: Option<Instant>,
    users_refused: u64,
    stats: Arc<BrokerStats>,
    entry: TreeEntry,
    guard: ChildGuard,
}

impl std::fmt::Debug for MazeRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MazeRouter")
            .field("status", &self.status())
            .finish()
    }
}

impl MazeRouter {
    /// A supervisor child spec; each start publishes the router's address in `slot`.
    pub fn spec(settings: MazeSettings, slot: RouterSlot, stats: Arc<BrokerStats>) -> ChildSpec {
        ChildSpec::new("router", "maze", move |cx: ChildContext| {
            let entry = cx.tree.register(Some(cx.parent), "router", "maze");
            let router = MazeRouter {
                reorder: Reorder::new(settings.reorder_window),
                graph: Graph::new(settings.max_users),
                settings: settings.clone(),
                sessions: FxHashMap::default(),
                by_user: Vec::new(),
                online: Vec::new(),
                out: Vec::new(),
                dirty: Vec::new(),
                line: BytesMut::with_capacity(64),
                source: None,
                paused: None,
                stalled_since: None,
                paused_since: None,
                users_refused: 0,
                stats: stats.clone(),
                entry,
                guard: cx.guard,
            };
            let addr = router.start();
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr.clone());
            Ok(addr.recipient())
        })
    }

    fn status(&self) -> RouterStatus {
        RouterStatus {
            next_seq: self.reorder.next(),
            held: self.reorder.held(),
            users: self.graph.users(),
            follows: self.graph.edges(),
            sessions: self.sessions.len(),
            source_connected: self.source.is_some(),
            source_paused: self.paused.is_some(),
        }
    }

    fn update_detail(&self) {
        let s = self.status();
        self.entry.set_detail(format!(
            "next {}, held {}, {} sessions, {} users, source {}",
            s.next_seq,
            s.held,
            s.sessions,
            s.users,
            match (s.source_connected, s.source_paused) {
                (false, _) => "none",
                (true, false) => "reading",
                (true, true) => "paused",
            }
        ));
    }

    fn user_slot(&mut self, u: User) {
        let n = u as usize + 1;
        if self.out.len() < n {
            self.out.resize_with(n, BytesMut::new);
            self.by_user.resize_with(n, Vec::new);
        }
    }

    fn intern(&mut self, id: u64) -> Option<User> {
        match self.graph.intern(id) {
            Ok(u) => {
                self.user_slot(u);
                Some(u)
            }
            Err(_) => {
                self.users_refused += 1;
                if self.users_refused.is_power_of_two() {
                    warn!(
                        user = id,
                        max_users = self.settings.max_users,
                        refused = self.users_refused,
                        "user table full, follow ignored"
                    );
                }
                None
            }
        }
    }

    fn notify(&mut self, u: User) {
        let buf = &mut self.out[u as usize];
        if buf.is_empty() {
            self.dirty.push(u);
        }
        buf.put_slice(&self.line);
        BrokerStats::add(&self.stats.maze_notifications, 1);
    }

    fn apply(&mut self, seq: u64, entry: Entry) {
        let Entry::Event(kind) = entry else {
            BrokerStats::add(&self.stats.maze_noops, 1);
            return;
        };
        BrokerStats::add(&self.stats.maze_events, 1);
        self.line.clear();
        write_event(&mut self.line, seq, &kind);
        self.line.put_slice(b"\r\n");
        match kind {
            MazeKind::Follow { from, to } => {
                if let (Some(f), Some(t)) = (self.intern(from), self.intern(to)) {
                    self.graph.follow(f, t);
                    if self.graph.is_online(t) {
                        self.notify(t);
                    }
                }
            }
            MazeKind::Unfollow { from, to } => {
                if let (Some(f), Some(t)) = (self.graph.lookup(from), self.graph.lookup(to)) {
                    self.graph.unfollow(f, t);
                }
            }
            MazeKind::Broadcast => {
                for i in 0..self.online.len() {
                    self.notify(self.online[i]);
                }
            }
            MazeKind::Private { to, .. } => {
                if let Some(t) = self.graph.lookup(to).filter(|&t| self.graph.is_online(t)) {
                    self.notify(t);
                }
            }
            MazeKind::Status { from } => {
                if let Some(f) = self.graph.lookup(from) {
                    let n = self.graph.online_followers(f).len();
                    for i in 0..n {
                        let u = self.graph.online_followers(f)[i];
                        self.notify(u);
                    }
                }
            }
        }
    }

    /// Applies every entry whose turn has come.
    fn drain(&mut self) {
        let mut progressed = false;
        while let Some((seq, entry)) = self.reorder.pop() {
            self.apply(seq, entry);
            progressed = true;
        }
        if progressed {
            self.stalled_since = None;
        }
    }

    /// Sends each recipient its chunk of this batch.
    fn flush_out(&mut self, ctx: &mut Context<Self>) {
        let mut evicted = Vec::new();
        for u in std::mem::take(&mut self.dirty) {
            let chunk: Bytes = self.out[u as usize].split().freeze();
            for sid in &self.by_user[u as usize] {
                let Some(reg) = self.sessions.get(sid) else {
                    continue;
                };
                match reg.addr.try_send(Deliver(chunk.clone())) {
                    Ok(()) => {}
                    Err(SendError::Full(_)) => evicted.push((*sid, true)),
                    Err(SendError::Closed(_)) => evicted.push((*sid, false)),
                }
            }
        }
        for (sid, full) in evicted {
            if full {
                self.evict(sid, "its mailbox is full", ctx);
            } else {
                self.unregister(sid);
            }
        }
    }

    /// Cuts a session off as a slow consumer.
    fn evict(&mut self, sid: u64, why: &'static str, ctx: &mut Context<Self>) {
        if let Some(reg) = self.unregister(sid) {
            BrokerStats::add(&self.stats.slow_consumer_disconnects, 1);
            warn!(
                session = sid,
                user = reg.user_id,
                why,
                "slow consumer: disconnecting session"
            );
            // Waits for room in the mailbox without holding up the router.
            ctx.spawn(actix::fut::wrap_future::<_, Self>(async move {
                let _ = reg.addr.send(Evict { why }).await;
            }));
        }
    }

    fn unregister(&mut self, sid: u64) -> Option<Registration> {
        let reg = self.sessions.remove(&sid)?;
        let list = &mut self.by_user[reg.user as usize];
        list.retain(|s| *s != sid);
        if list.is_empty() {
            self.online.retain(|u| *u != reg.user);
            self.out[reg.user as usize] = BytesMut::new();
        }
        self.graph.disconnect(reg.user);
        Some(reg)
    }

    /// Whether the clients' output asks the source to wait: one client holds more than
    /// half its budget, or all together more than `limit`. Notes since when each
    /// client has been over half its budget.
    fn output_pressure(&mut self, limit: usize) -> bool {
        let high = self.settings.client_high_water_bytes;
        let mut total = 0;
        let mut any_high = false;
        for reg in self.sessions.values_mut() {
            let q = reg.load.queued.load(Relaxed);
            total += q;
            if q > high {
                any_high = true;
                reg.high_since.get_or_insert_with(Instant::now);
            } else {
                reg.high_since = None;
            }
        }
        any_high || total > limit
    }

    /// Answers a held-back batch once the source may send more: nothing waits beyond
    /// the window, no client is over half its budget, and the clients' backlog is down
    /// to half the pacing mark. Meanwhile a client that holds the stream back for
    /// `client_stall` is cut off, so no client can stall the others for longer.
    fn maybe_resume(&mut self, ctx: &mut Context<Self>) {
        if self.paused.is_none() || self.reorder.overflowing() {
            return;
        }
        if !self.output_pressure(self.settings.pace_output_bytes / 2) {
            self.paused_since = None;
            if let Some(tx) = self.paused.take() {
                let _ = tx.send(());
            }
            return;
        }
        let stall = self.settings.client_stall;
        let since = *self.paused_since.get_or_insert_with(Instant::now);
        let waited = since.elapsed() >= stall;
        let stuck: Vec<(u64, &'static str)> = self
            .sessions
            .iter()
            .filter_map(|(sid, r)| {
                if r.high_since.is_some_and(|t| t.elapsed() >= stall) {
                    Some((
                        *sid,
                        "over half its output budget for client_stall_ms while the stream waited",
                    ))
                } else if waited && r.load.stalled(stall) {
                    Some((
                        *sid,
                        "its output has not moved for client_stall_ms while the stream waited",
                    ))
                } else {
                    None
                }
            })
            .collect();
        for (sid, why) in stuck {
            self.evict(sid, why, ctx);
        }
        if waited {
            self.paused_since = Some(Instant::now());
        }
        ctx.run_later(Duration::from_millis(2), |act, ctx| act.maybe_resume(ctx));
    }

    fn check_gap(&mut self, ctx: &mut Context<Self>, gap: Duration) {
        if self.reorder.held() == 0 {
            self.stalled_since = None;
            return;
        }
        let since = *self.stalled_since.get_or_insert_with(Instant::now);
        if since.elapsed() < gap {
            return;
        }
        if let Some(seq) = self.reorder.skip_missing() {
            BrokerStats::add(&self.stats.maze_gaps_skipped, 1);
            warn!(
                seq,
                waited_ms = since.elapsed().as_millis() as u64,
                "sequence number missing, skipped"
            );
            self.stalled_since = None;
            self.drain();
            self.flush_out(ctx);
            self.maybe_resume(ctx);
            self.update_detail();
        }
    }
}

impl Actor for MazeRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
        if let Some(gap) = self.settings.gap_timeout {
            let every = (gap / 4).clamp(Duration::from_millis(5), Duration::from_secs(1));
            ctx.run_interval(every, move |act, ctx| act.check_gap(ctx, gap));
        }
        self.update_detail();
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.guard.stopped();
    }
}

impl Handler<SourceHello> for MazeRouter {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: SourceHello, _: &mut Self::Context) -> Self::Result {
        if let Some((_, peer)) = self.source {
            return Err(format!("another event source is connected ({peer})"));
        }
        self.source = Some((msg.id, msg.peer));
        let fresh = self.reorder.next() == 1 && self.reorder.held() == 0 && self.graph.edges() == 0;
        match self.settings.on_new_source {
            OnNewSource::Reset if !fresh => {
                let dropped = self.reorder.reset();
                let follows = self.graph.edges();
                self.graph.clear_follows();
                info!(peer = %msg.peer, dropped_events = dropped, cleared_follows = follows, "new event source: stream reset to sequence 1");
            }
            _ => info!(peer = %msg.peer, next_seq = self.reorder.next(), "event source connected"),
        }
        self.update_detail();
        Ok(())
    }
}

impl Handler<SourceGone> for MazeRouter {
    type Result = ();

    fn handle(&mut self, msg: SourceGone, _: &mut Self::Context) {
        if self.source.is_some_and(|(id, _)| id == msg.id) {
            self.source = None;
            self.paused = None;
            info!(
                next_seq = self.reorder.next(),
                held = self.reorder.held(),
                "event source closed"
            );
            self.update_detail();
        }
    }
}

impl Handler<EventBatch> for MazeRouter {
    type Result = ResponseFuture<Result<(), ()>>;

    fn handle(&mut self, batch: EventBatch, ctx: &mut Self::Context) -> Self::Result {
        if !self.source.is_some_and(|(id, _)| id == batch.source) {
            return Box::pin(async { Err(()) });
        }
        for (seq, entry) in batch.entries {
            match self.reorder.insert(seq, entry) {
                // Applying as soon as possible keeps the ring short and the overflow empty.
                Ok(()) if seq == self.reorder.next() => self.drain(),
                Ok(()) => {}
                Err(Refused::Stale { next }) => {
                    warn!(seq, next_seq = next, "event already applied, dropped")
                }
                Err(Refused::Duplicate) => warn!(
                    seq,
                    "duplicate sequence number, dropped (the first is kept)"
                ),
            }
        }
        self.drain();
        self.flush_out(ctx);
        self.update_detail();
        let ahead = self.reorder.overflowing();
        if ahead || self.output_pressure(self.settings.pace_output_bytes) {
            BrokerStats::add(&self.stats.maze_source_pauses, 1);
            debug!(
                next_seq = self.reorder.next(),
                held = self.reorder.held(),
                reason = if ahead {
                    "a window ahead"
                } else {
                    "clients' backlog"
                },
                "source paused"
            );
            let (tx, rx) = oneshot::channel();
            self.paused = Some(tx);
            self.update_detail();
            self.maybe_resume(ctx);
            return Box::pin(async move { rx.await.map_err(|_| ()) });
        }
        Box::pin(async { Ok(()) })
    }
}

impl Handler<Register> for MazeRouter {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: Register, _: &mut Self::Context) -> Self::Result {
        let Ok(u) = self.graph.intern(msg.user) else {
            return Err(format!(
                "user table full (maze.max_users = {})",
                self.settings.max_users
            ));
        };
        self.user_slot(u);
        self.graph.connect(u);
        if self.by_user[u as usize].is_empty() {
            self.online.push(u);
        }
        self.by_user[u as usize].push(msg.session);
        self.sessions.insert(
            msg.session,
            Registration {
                user: u,
                user_id: msg.user,
                addr: msg.addr,
                load: msg.load,
                high_since: None,
            },
        );
        debug!(session = msg.session, user = msg.user, "session registered");
        self.update_detail();
        Ok(())
    }
}

impl Handler<Unregister> for MazeRouter {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Self::Context) {
        if self.unregister(msg.session).is_some() {
            debug!(session = msg.session, "session unregistered");
            self.update_detail();
        }
    }
}

impl Handler<GetStatus> for MazeRouter {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}

impl Handler<Shutdown> for MazeRouter {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
