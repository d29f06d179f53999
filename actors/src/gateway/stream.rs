//! [`StreamSink`]: one live subscription of the gateway (an SSE or gRPC stream) as an
//! actor. Partitions deliver to it against credit; it moves records into the stream's
//! bounded channel as the client reads, and grants credit for exactly what moved, so a
//! slow client holds at most one window per partition. The records it holds, in the
//! actor and in the channel, are counted in bytes in its [`Window`]
//! (`gateway.stream_buffer_bytes`): partitions read nothing more for it while that is
//! full, and the client's side ([`StreamRx`]) releases each record as it takes it. A
//! slow client is paced that way; only a full memory budget sheds the largest holder.
//!
//! In a consumer group it joins the group and follows rebalances. It commits from the
//! [`Progress`] its client's side reports (what the server took to write), one round
//! late: at each round it commits what had been taken by the round before, if the
//! client is still there. A client that goes away (its server drops the stream) ends
//! the sink at its next tick, which leaves the group without committing what was taken
//! since: those records go to the member that gets the partition next (at least once).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;
use tracing::debug;

use super::backend::{STREAM_BUFFER_BYTES, STREAM_WINDOW};
use super::error::ApiError;
pub use super::stream_rx::{Delivered, Progress, StreamRx};
use crate::budget::{record_bytes, Shed, Window};
use crate::stats::BrokerStats;
use crate::topic::registry::groups::{Assignment, Commit, JoinGroup, LeaveGroup};
use crate::topic::registry::SubscribeTopic;
use crate::topic::subscribers::{Credit, Deliveries, StartAt, SubKey, Subscribe, Unsubscribe};
use crate::topic::{Partition, TopicError, TopicRegistry};

/// Subscribes (or joins the group); answered once the partitions are attached.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), TopicError>")]
pub struct Open {
    pub registry: Addr<TopicRegistry>,
    pub start: StartAt,
    /// Partitions that resume at an offset of their own (a client's `Last-Event-ID` or
    /// `after`) instead of at `start`; not used in a group, whose commits decide.
    pub resume: BTreeMap<u32, u64>,
}

/// How often the sink moves records and checks that its client is still there.
const TICK: Duration = Duration::from_millis(10);
/// A group member's commit round: what its client's server had taken to write by one
/// round is committed at the next, if the client is still connected then.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct StreamSink {
    key: SubKey,
    topic: String,
    partition: Option<u32>,
    group: Option<String>,
    tx: mpsc::Sender<Delivered>,
    registry: Option<Addr<TopicRegistry>>,
    partitions: Vec<(u32, Addr<Partition>)>,
    held: VecDeque<Delivered>,
    /// What the client's server had taken at the last commit round (group members).
    progress: Arc<Progress>,
    pending: HashMap<u32, u64>,
    committed: HashMap<u32, u64>,
    stats: Arc<BrokerStats>,
    draining: Arc<AtomicBool>,
    window: Arc<Window>,
}

impl StreamSink {
    pub fn new(
        id: u64,
        topic: String,
        partition: Option<u32>,
        group: Option<String>,
        tx: mpsc::Sender<Delivered>,
        stats: Arc<BrokerStats>,
        draining: Arc<AtomicBool>,
    ) -> Self {
        StreamSink {
            key: SubKey {
                conn: id,
                sub: "gateway".into(),
            },
            topic,
            partition,
            group,
            tx,
            registry: None,
            partitions: Vec::new(),
            held: VecDeque::new(),
            progress: Arc::default(),
            pending: HashMap::new(),
            committed: HashMap::new(),
            window: Window::new(stats.memory.clone(), STREAM_BUFFER_BYTES),
            stats,
            draining,
        }
    }

    /// Counts what it holds in `window`, and commits from `progress` (both shared with
    /// its [`StreamRx`]).
    pub fn with_client_side(mut self, window: Arc<Window>, progress: Arc<Progress>) -> Self {
        self.window = window;
        self.progress = progress;
        self
    }

    /// Parses `from`: earliest, latest, committed (groups), or an offset.
    pub fn start_at(&self, from: &str) -> Result<StartAt, ApiError> {
        Ok(match from {
            "" if self.group.is_some() => StartAt::Earliest,
            "" | "latest" => StartAt::Latest,
            "earliest" => StartAt::Earliest,
            "committed" if self.group.is_some() => StartAt::Earliest,
            "committed" => return Err(ApiError::invalid("from=committed needs a group")),
            n => StartAt::Offset(n.parse().map_err(|_| {
                ApiError::invalid(format!(
                    "from must be earliest, latest, committed or an offset, not `{n}`"
                ))
            })?),
        })
    }

    fn grant(&self, partition: u32, n: u64) {
        if let Some((_, addr)) = self.partitions.iter().find(|(p, _)| *p == partition) {
            let _ = addr.try_send(Credit {
                key: self.key.clone(),
                n,
            });
        }
    }

    /// Moves held records into the channel while it has room; grants credit for them.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.tx.is_closed() || self.draining.load(Ordering::SeqCst) {
            return ctx.stop();
        }
        self.stats
            .stream_buffer_peak_bytes
            .fetch_max(self.window.peak(), Ordering::Relaxed);
        if self.window.take_starved() {
            // The client read enough: partitions that held records back go on.
            for (_, addr) in &self.partitions {
                let _ = addr.try_send(Credit {
                    key: self.key.clone(),
                    n: 0,
                });
            }
        }
        let mut moved: HashMap<u32, u64> = HashMap::new();
        while let Some(d) = self.held.pop_front() {
            let p = d.partition;
            match self.tx.try_send(d) {
                Ok(()) => *moved.entry(p).or_default() += 1,
                Err(mpsc::error::TrySendError::Full(d)) => {
                    self.held.push_front(d);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return ctx.stop(),
            }
        }
        for (p, n) in moved {
            BrokerStats::add(&self.stats.records_delivered, n);
            self.grant(p, n);
        }
    }

    /// One commit round: commits what the client's server had taken by the last round,
    /// now that the client has stayed connected a round longer.
    fn commit_round(&mut self, ctx: &mut Context<Self>) {
        if self.tx.is_closed() {
            // Gone since the last round: nothing it took since then is known delivered.
            return ctx.stop();
        }
        let confirmed = std::mem::replace(&mut self.pending, self.progress.snapshot());
        let (Some(group), Some(reg)) = (&self.group, &self.registry) else {
            return;
        };
        for (p, offset) in confirmed {
            if self.committed.get(&p).is_some_and(|c| *c >= offset) {
                continue;
            }
            let _ = reg.try_send(Commit {
                group: group.clone(),
                topic: self.topic.clone(),
                partition: p,
                offset,
            });
            self.committed.insert(p, offset);
        }
    }
}

impl Actor for StreamSink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        self.window.register(ctx.address().recipient());
        ctx.run_interval(TICK, |act, ctx| act.pump(ctx));
        if self.group.is_some() {
            ctx.run_interval(COMMIT_EVERY, |act, ctx| act.commit_round(ctx));
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.stats
            .stream_buffer_peak_bytes
            .fetch_max(self.window.peak(), Ordering::Relaxed);
        self.window.close();
        // No last commit: what was taken since the last round may sit unread in a dead
        // connection's buffers, so the next member reads it again.
        for (_, addr) in &self.partitions {
            let _ = addr.try_send(Unsubscribe {
                key: self.key.clone(),
            });
        }
        if let (Some(_), Some(reg)) = (&self.group, &self.registry) {
            let _ = reg.try_send(LeaveGroup {
                key: self.key.clone(),
            });
        }
        debug!(topic = %self.topic, stream = self.key.conn, "gateway stream closed");
    }
}

impl Handler<Open> for StreamSink {
    type Result = ResponseActFuture<Self, Result<(), TopicError>>;

    fn handle(&mut self, o: Open, ctx: &mut Self::Context) -> Self::Result {
        self.registry = Some(o.registry.clone());
        let key = self.key.clone();
        let (to, notify) = (ctx.address().recipient(), ctx.address().recipient());
        let topic = self.topic.clone();
        let window = self.window.clone();
        let fut = match self.group.clone() {
            Some(group) => {
                let f = o.registry.send(JoinGroup {
                    group,
                    topic,
                    key,
                    to,
                    notify,
                    start: o.start,
                    window: Some(window),
                });
                Box::pin(async move { f.await?.map(|()| Vec::new()) })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
            }
            None => {
                let resume = o.resume;
                // Partitions that resume elsewhere are subscribed again below, before
                // any of them has credit to deliver from `start`.
                let credit = if resume.is_empty() { STREAM_WINDOW } else { 0 };
                let f = o.registry.send(SubscribeTopic {
                    topic,
                    partition: self.partition,
                    key: key.clone(),
                    to: to.clone(),
                    start: o.start,
                    credit,
                    window: Some(window.clone()),
                });
                Box::pin(async move {
                    let parts = f.await??;
                    if !resume.is_empty() {
                        for (p, _, addr) in &parts {
                            match resume.get(p) {
                                Some(&next) => addr
                                    .send(Subscribe {
                                        key: key.clone(),
                                        to: to.clone(),
                                        start: StartAt::Offset(next),
                                        credit: STREAM_WINDOW,
                                        window: Some(window.clone()),
                                    })
                                    .await?
                                    .map(drop)
                                    .map_err(TopicError::Partition)?,
                                None => {
                                    addr.send(Credit {
                                        key: key.clone(),
                                        n: STREAM_WINDOW,
                                    })
                                    .await?
                                }
                            }
                        }
                    }
                    Ok(parts.into_iter().map(|(p, _, a)| (p, a)).collect())
                })
            }
        };
        Box::pin(
            fut.into_actor(self)
                .map(|r: Result<Vec<_>, TopicError>, act, ctx| match r {
                    Ok(parts) => {
                        if act.group.is_none() {
                            act.partitions = parts;
                        }
                        Ok(())
                    }
                    Err(e) => {
                        ctx.stop();
                        Err(e)
                    }
                }),
        )
    }
}

impl Handler<Deliveries> for StreamSink {
    type Result = ();

    fn handle(&mut self, d: Deliveries, ctx: &mut Self::Context) {
        for record in d.records {
            self.held.push_back(Delivered {
                topic: d.topic.clone(),
                partition: d.partition,
                record,
            });
        }
        self.pump(ctx);
        if let Some(u) = d.unreadable {
            // The stream ends after the records before them; the client may open a
            // new one from `last + 1`.
            tracing::error!(topic = %d.topic, partition = d.partition, first = u.first, last = u.last, reason = %u.reason, "stream reached unreadable records; closing it");
            ctx.stop();
        }
        if d.deleted {
            tracing::info!(topic = %d.topic, "stream ended: topic deleted");
            ctx.stop();
        }
    }
}

impl Handler<Assignment> for StreamSink {
    type Result = ();

    /// A rebalance: read these partitions now (each with a full window of credit).
    /// Partitions that moved away are no longer this member's to deliver or commit:
    /// their new owner starts at the group's commit.
    fn handle(&mut self, a: Assignment, _: &mut Self::Context) {
        let old: Vec<u32> = self.partitions.iter().map(|(p, _)| *p).collect();
        self.partitions = a.partitions;
        let now: Vec<u32> = self.partitions.iter().map(|(p, _)| *p).collect();
        for p in old.iter().filter(|p| !now.contains(p)) {
            self.progress.forget(*p);
            self.pending.remove(p);
            self.committed.remove(p);
        }
        let window = &self.window;
        self.held.retain(|d| {
            let mine = now.contains(&d.partition);
            if !mine {
                window.release(record_bytes(&d.record));
            }
            mine
        });
        for (p, addr) in &self.partitions {
            if !old.contains(p) {
                let _ = addr.try_send(Credit {
                    key: self.key.clone(),
                    n: STREAM_WINDOW,
                });
            }
        }
    }
}

impl Handler<Shed> for StreamSink {
    type Result = ();

    /// The memory budget is full of output, and this stream's client has read nothing
    /// for a while (a stream holds only records, which are paced): it ends (in a group,
    /// without committing: its records go to the next member).
    fn handle(&mut self, s: Shed, ctx: &mut Self::Context) {
        BrokerStats::add(&self.stats.slow_consumer_disconnects, 1);
        tracing::warn!(
            topic = %self.topic, stream = self.key.conn, held = s.held, limit = s.limit,
            "slow consumer: memory budget full, closing a stream whose client reads nothing"
        );
        ctx.stop();
    }
}
