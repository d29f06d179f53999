//! [`StreamSink`]: one live subscription of the gateway (an SSE or gRPC stream) as an
//! actor. Partitions deliver to it against credit; it moves records into the stream's
//! bounded channel as the client reads, and grants credit for exactly what moved, so a
//! slow client holds at most one window per partition. In a consumer group it joins the
//! group, follows rebalances, and commits what it has handed to the client.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use switchyard_codecs::record::Record;
use tokio::sync::mpsc;
use tracing::debug;

use super::backend::STREAM_WINDOW;
use super::error::ApiError;
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
            stats,
            draining,
        }
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
        ctx.run_interval(TICK, |act, ctx| act.pump(ctx));
        ctx.run_interval(COMMIT_EVERY, |act, _| act.commit());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
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
            tracing::error!(topic = %d.topic, partition = d.partition, first = u.first, last = ?u.last, reason = %u.reason, "stream reached unreadable records; closing it");
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
