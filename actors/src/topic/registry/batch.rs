//! [`PublishMany`]: the publishes decoded from one socket read, routed together. Each
//! partition gets one `AppendBatch` for all of them (one write, one group commit), and
//! each publish is answered with its own offsets: one actor hop per read, not per record.
//!
//! A publish with a `msg_id` is looked up in the registry's [`DedupIndex`] before it is
//! routed: a duplicate is answered from the index (or waits for its first), and the
//! first's answer is settled into the index once its partition has answered.
//!
//! [`DedupIndex`]: crate::topic::dedup::DedupIndex

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::{Publish, Published, TopicRegistry};
use crate::storage::log::Append;
use crate::topic::dedup::{self, Lookup};
use crate::topic::partition::AppendBatch;
use crate::topic::{Partition, TopicError};

/// Publishes in the order they arrived; answered in the same order.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Result<Published, TopicError>>")]
pub struct PublishMany(pub Vec<Publish>);

type Answer = Result<Published, TopicError>;

struct Group {
    topic: String,
    partition: u32,
    addr: Addr<Partition>,
    /// (index of the publish, its record count), in order.
    items: Vec<(usize, u64)>,
    records: Vec<Append>,
}

/// The first publish of an id in this batch, to settle into the index once answered.
struct First {
    index: usize,
    topic: String,
    id: Bytes,
    at_ms: u64,
}

/// The first publishes of ids, answered: settled into the index, and the duplicates
/// waiting for them answered alike.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct Settle(pub Vec<(String, Bytes, u64, Answer)>);

/// The `msg_id` a publish carries (its records' label), if any.
fn msg_id(p: &Publish) -> Option<&Bytes> {
    p.records.first()?.labels.get(dedup::MSG_ID)
}

impl TopicRegistry {
    /// What the index says of a publish carrying `id`; the topic is created first when
    /// it may be (the index is per topic).
    fn look_up(&mut self, p: &Publish, id: &Bytes, at_ms: u64) -> Result<Lookup, TopicError> {
        dedup::check_msg_id(id)?;
        self.topic_or_create(&p.topic)?;
        Ok(self.dedup.begin(&p.topic, id, at_ms))
    }

    /// Routes `all`, sends every partition its batch, and answers each publish in order.
    pub(super) fn publish_all(
        &mut self,
        all: Vec<Publish>,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Vec<Answer>> {
        let mut results: Vec<Option<Answer>> = Vec::with_capacity(all.len());
        results.resize_with(all.len(), || None);
        let mut groups: Vec<Group> = Vec::new();
        let mut firsts: Vec<First> = Vec::new();
        let mut waits: Vec<(usize, oneshot::Receiver<Answer>)> = Vec::new();
        let dedup_on = self.dedup.settings().enabled();
        let total: usize = all.iter().map(|p| p.records.len()).sum();
        let n_all = all.len();
        for (i, p) in all.into_iter().enumerate() {
            let id = if dedup_on { msg_id(&p).cloned() } else { None };
            if let Some(id) = id {
                let at_ms = p
                    .records
                    .first()
                    .map_or_else(crate::topic::wire::now_ms, |r| r.timestamp_ms);
                match self.look_up(&p, &id, at_ms) {
                    Err(e) => {
                        results[i] = Some(Err(e));
                        continue;
                    }
                    Ok(Lookup::Duplicate(done)) => {
                        results[i] = Some(Ok(done));
                        continue;
                    }
                    Ok(Lookup::Wait(rx)) => {
                        waits.push((i, rx));
                        continue;
                    }
                    Ok(Lookup::Fresh) => firsts.push(First {
                        index: i,
                        topic: p.topic.clone(),
                        id,
                        at_ms,
                    }),
                }
            }
            match self.route(&p) {
                Err(e) => {
                    if let Some(f) = firsts.last().filter(|f| f.index == i) {
                        // Never stored: forgotten at once, so a retry is a fresh publish.
                        let _ = self.dedup.settle(&f.topic, &f.id, f.at_ms, &Err(e.clone()));
                        firsts.pop();
                    }
                    results[i] = Some(Err(e));
                }
                Ok((partition, t)) => {
                    let n = p.records.len() as u64;
                    // The address is cloned once per partition of the batch, not per
                    // publish: one record per envelope makes this the hot loop.
                    let at = groups
                        .iter()
                        .position(|g| g.partition == partition && g.topic == p.topic);
                    let g = match at {
                        Some(j) => &mut groups[j],
                        None => {
                            groups.push(Group {
                                topic: p.topic.clone(),
                                partition,
                                addr: t.partitions[partition as usize].clone(),
                                // Most batches go to one partition: room for all.
                                items: Vec::with_capacity(if groups.is_empty() {
                                    n_all
                                } else {
                                    0
                                }),
                                records: Vec::with_capacity(if groups.is_empty() {
                                    total
                                } else {
                                    0
                                }),
                            });
                            let last = groups.len() - 1;
                            &mut groups[last]
                        }
                    };
                    g.items.push((i, n));
                    g.records.extend(p.records);
                }
            }
        }
        // Every partition's batch is in its mailbox before any answer is awaited.
        let sent: Vec<_> = groups
            .into_iter()
            .map(|g| (g.partition, g.items, g.addr.send(AppendBatch(g.records))))
            .collect();
        let registry = (!firsts.is_empty()).then(|| ctx.address());
        Box::pin(async move {
            for (partition, items, reply) in sent {
                let reply = reply.await.map_err(TopicError::from);
                match reply.and_then(|r| r.map_err(TopicError::Partition)) {
                    Ok(range) => {
                        let mut next = range.start;
                        for (i, n) in items {
                            results[i] = Some(Ok(Published {
                                partition,
                                first_offset: next,
                                count: n,
                                duplicate: false,
                            }));
                            next += n;
                        }
                    }
                    Err(e) => {
                        for (i, _) in items {
                            results[i] = Some(Err(e.clone()));
                        }
                    }
                }
            }
            if let Some(registry) = registry {
                let settled = firsts
                    .into_iter()
                    .map(|f| {
                        let answer = results[f.index].clone().unwrap_or_else(|| Err(lost()));
                        (f.topic, f.id, f.at_ms, answer)
                    })
                    .collect();
                // A registry that stopped meanwhile took its waiters with it: they see
                // their senders dropped.
                let _ = registry.send(Settle(settled)).await;
            }
            // After the settle: a duplicate in this very batch waits for it.
            for (i, rx) in waits {
                results[i] = Some(rx.await.unwrap_or_else(|_| {
                    Err(TopicError::Unavailable(
                        "the first publish of this msg_id was not answered (its topic or the registry went away); publish again".into(),
                    ))
                }));
            }
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(lost())))
                .collect()
        })
    }
}

fn lost() -> TopicError {
    TopicError::Unavailable("publish lost".into())
}

impl Handler<PublishMany> for TopicRegistry {
    type Result = ResponseFuture<Vec<Answer>>;

    fn handle(&mut self, PublishMany(all): PublishMany, ctx: &mut Self::Context) -> Self::Result {
        self.publish_all(all, ctx)
    }
}

impl Handler<Publish> for TopicRegistry {
    type Result = ResponseFuture<Answer>;

    fn handle(&mut self, p: Publish, ctx: &mut Self::Context) -> Self::Result {
        let answers = self.publish_all(vec![p], ctx);
        Box::pin(async move { answers.await.pop().unwrap_or_else(|| Err(lost())) })
    }
}
