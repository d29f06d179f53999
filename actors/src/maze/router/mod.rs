//! [`MazeRouter`]: applies events in sequence order and fans them out.
//!
//! Per input batch (one socket read of the event source) the router applies every
//! event it can, appends each notification to its recipient's buffer, and then sends
//! each recipient session one `Bytes` chunk: one actor message and one `write(2)` per
//! client per batch. It never waits on a session: a full mailbox evicts the session.

use std::net::SocketAddr;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{BufMut, Bytes, BytesMut};
use rustc_hash::FxHashMap;
use switchyard_codecs::maze::write_event;
use switchyard_codecs::MazeKind;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

mod flow;
mod journal;

use super::graph::{Graph, User};
use super::load::SessionLoad;
pub use super::messages::{
    EventBatch, GetStatus, Register, RouterStatus, SourceGone, SourceHello, Unregister,
};
use super::reorder::{Entry, Refused, Reorder};
use super::session::{Deliver, Session};
use super::settings::{MazeSettings, OnNewSource};
use crate::stats::BrokerStats;
use crate::supervisor::{ChildContext, ChildGuard, ChildSpec, Shutdown};
use crate::topic::registry::TopicsSlot;
use crate::tree::TreeEntry;

/// Where listeners find the router that runs now (it changes when it restarts).
pub type RouterSlot = Arc<Mutex<Option<Addr<MazeRouter>>>>;

#[derive(Debug)]
struct Registration {
    user: User,
    user_id: u64,
    addr: Addr<Session>,
    load: Arc<SessionLoad>,
    /// Since when its output has been over half its budget.
    high_since: Option<Instant>,
}

pub struct MazeRouter {
    journal: Option<journal::Journal>,
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
    /// `topics`: where the journal topic (`[maze] topic`) lives, when there is one.
    pub fn spec(
        settings: MazeSettings,
        slot: RouterSlot,
        topics: TopicsSlot,
        stats: Arc<BrokerStats>,
    ) -> ChildSpec {
        ChildSpec::new("router", "maze", move |cx: ChildContext| {
            let entry = cx.tree.register(Some(cx.parent), "router", "maze");
            let journal = settings
                .journal_topic
                .clone()
                .map(|t| journal::Journal::new(t, topics.clone()));
            let router = MazeRouter {
                journal,
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
        if let Some(j) = &mut self.journal {
            j.record(&self.line);
        }
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
}

impl MazeRouter {
    /// Publishes the events journaled since the last call; the source's answer waits
    /// for it, so the journal keeps up with the stream and stays in order.
    fn journal_future(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        let publish = self.journal.as_mut().and_then(journal::Journal::take);
        async move {
            if let Some((registry, p)) = publish {
                let topic = p.topic.clone();
                match registry.send(p).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => warn!(topic = %topic, error = %e, "maze events not journaled"),
                    Err(e) => warn!(topic = %topic, error = %e, "maze events not journaled"),
                }
            }
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
        // The tree shows the stream as of the last second, not a format per batch;
        // control messages (sources, sessions) update it at once.
        ctx.run_interval(Duration::from_secs(1), |act, _| act.update_detail());
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
        if self.source.is_none_or(|(id, _)| id != batch.source) {
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
            self.maybe_resume(ctx);
            let journaled = self.journal_future();
            return Box::pin(async move {
                journaled.await;
                rx.await.map_err(|_| ())
            });
        }
        let journaled = self.journal_future();
        Box::pin(async move {
            journaled.await;
            Ok(())
        })
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
