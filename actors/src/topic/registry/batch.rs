//! [`PublishMany`]: the publishes decoded from one socket read, routed together. Each
//! partition gets one `AppendBatch` for all of them (one write, one group commit), and
//! each publish is answered with its own offsets: one actor hop per read, not per record.

use actix::prelude::*;

use super::{Publish, Published, TopicRegistry};
use crate::storage::log::Append;
use crate::topic::partition::AppendBatch;
use crate::topic::{Partition, TopicError};

/// Publishes in the order they arrived; answered in the same order.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Result<Published, TopicError>>")]
pub struct PublishMany(pub Vec<Publish>);

struct Group {
    topic: String,
    partition: u32,
    addr: Addr<Partition>,
    /// (index of the publish, its record count), in order.
    items: Vec<(usize, u64)>,
    records: Vec<Append>,
}

impl Handler<PublishMany> for TopicRegistry {
    type Result = ResponseFuture<Vec<Result<Published, TopicError>>>;

    fn handle(&mut self, PublishMany(all): PublishMany, _: &mut Self::Context) -> Self::Result {
        let mut results: Vec<Option<Result<Published, TopicError>>> = Vec::with_capacity(all.len());
        results.resize_with(all.len(), || None);
        let mut groups: Vec<Group> = Vec::new();
        let total: usize = all.iter().map(|p| p.records.len()).sum();
        let n_all = all.len();
        for (i, p) in all.into_iter().enumerate() {
            match self.route(&p) {
                Err(e) => results[i] = Some(Err(e)),
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
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(TopicError::Unavailable("publish lost".into()))))
                .collect()
        })
    }
}
