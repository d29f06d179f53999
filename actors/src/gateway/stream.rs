//! [`StreamSink`]: one live subscription of the gateway (an SSE or gRPC stream) as an
//! actor. Partitions deliver to it against credit; it moves records into the stream's
//! bounded channel as the client reads, and grants credit for exactly what moved, so a
//! slow client holds at most one window per partition. The records it holds, in the
//! actor and in the channel, are counted in bytes in its [`Window`]
//! (`gateway.stream_buffer_bytes`): partitions read nothing more for it while that is
//! full, and the client's side ([`StreamRx`]) releases each record as it takes it. In a
//! consumer group it joins the group, follows rebalances, and commits what it has
//! handed to the client.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::prelude::*;
use switchyard_codecs::record::Record;
use tokio::sync::mpsc;
use tracing::debug;

use super::backend::{STREAM_BUFFER_BYTES, STREAM_WINDOW};
use super::error::ApiError;
use crate::budget::{record_bytes, Shed, Window};
use crate::stats::BrokerStats;
use crate::topic::registry::groups::{Assignment, Commit, JoinGroup, LeaveGroup};
use crate::topic::registry::SubscribeTopic;
use crate::topic::subscribers::{Credit, Deliveries, StartAt, SubKey, Unsubscribe};
use crate::topic::{Partition, TopicError, TopicRegistry};

/// One record for the client.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub topic: String,
    pub partition: u32,
    pub record: Record,
}

/// Subscribes (or joins the group); answered once the partitions are attached.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), TopicError>")]
pub struct Open {
    pub registry: Addr<TopicRegistry>,
    pub start: StartAt,
}

/// How often the sink moves records and checks that its client is still there.
const TICK: Duration = Duration::from_millis(10);
/// How often a group member commits what it delivered.
const COMMIT_EVERY: Duration = Duration::from_millis(200);

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
    /// Next offset to commit, per partition (group members).
    delivered: HashMap<u32, u64>,
    committed: HashMap<u32, u64>,
    stats: Arc<BrokerStats>,
    draining: Arc<AtomicBool>,
    window: Arc<Window>,
}

/// The client's end of a stream: each record taken from it is released from the
/// stream's window.
#[derive(Debug)]
pub struct StreamRx {
    rx: mpsc::Receiver<Delivered>,
    window: Arc<Window>,
}

impl StreamRx {
    pub fn new(rx: mpsc::Receiver<Delivered>, window: Arc<Window>) -> Self {
        StreamRx { rx, window }
    }
}

impl futures_util::Stream for StreamRx {
    type Item = Delivered;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Delivered>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(d)) = &polled {
            self.window.release(record_bytes(&d.record));
        }
        polled
    }
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
            delivered: HashMap::new(),
            committed: HashMap::new(),
            window: Window::new(stats.memory.clone(), STREAM_BUFFER_BYTES),
            stats,
            draining,
        }
    }

    /// Counts what it holds in `window` (shared with its [`StreamRx`]).
    pub fn with_window(mut self, window: Arc<Window>) -> Self {
        self.window = window;
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
            let (p, next) = (d.partition, d.record.offset + 1);
            match self.tx.try_send(d) {
                Ok(()) => {
                    *moved.entry(p).or_default() += 1;
                    self.delivered.insert(p, next);
                }
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

    fn commit(&mut self) {
        let (Some(group), Some(reg)) = (&self.group, &self.registry) else {
            return;
        };
        for (&p, &offset) in &self.delivered {
            if self.committed.get(&p) != Some(&offset) {
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
}

impl Actor for StreamSink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        self.window.register(ctx.address().recipient());
        ctx.run_interval(TICK, |act, ctx| act.pump(ctx));
        ctx.run_interval(COMMIT_EVERY, |act, _| act.commit());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.stats
            .stream_buffer_peak_bytes
            .fetch_max(self.window.peak(), Ordering::Relaxed);
        self.window.close();
        self.commit();
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
        let fut = match self.group.clone() {
            Some(group) => {
                let f = o.registry.send(JoinGroup {
                    group,
                    topic,
                    key,
                    to,
                    notify,
                    start: o.start,
                    window: Some(self.window.clone()),
                });
                Box::pin(async move { f.await?.map(|()| Vec::new()) })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
            }
            None => {
                let f = o.registry.send(SubscribeTopic {
                    topic,
                    partition: self.partition,
                    key,
                    to,
                    start: o.start,
                    credit: STREAM_WINDOW,
                    window: Some(self.window.clone()),
                });
                Box::pin(async move {
                    let parts = f.await??;
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
    }
}

impl Handler<Assignment> for StreamSink {
    type Result = ();

    /// A rebalance: read these partitions now (each with a full window of credit).
    fn handle(&mut self, a: Assignment, _: &mut Self::Context) {
        let old: Vec<u32> = self.partitions.iter().map(|(p, _)| *p).collect();
        self.partitions = a.partitions;
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

    /// The memory budget is full of output and this stream holds the most: it ends.
    fn handle(&mut self, s: Shed, ctx: &mut Self::Context) {
        BrokerStats::add(&self.stats.slow_consumer_disconnects, 1);
        tracing::warn!(
            topic = %self.topic, stream = self.key.conn, held = s.held, limit = s.limit,
            "slow consumer: memory budget full, closing the largest holder of output"
        );
        ctx.stop();
    }
}
