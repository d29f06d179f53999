//! Publishes on a broker-port connection travel in batches: every `topic publish`
//! decoded from one socket read goes to the registry in one [`PublishMany`], and their
//! acks leave in one write. Other requests send the pending batch first, so the
//! registry sees a connection's requests in the order they came.

use actix::prelude::*;
use bytes::Bytes;

use super::Connection;
use crate::budget::Held;
use crate::topic::registry::batch::PublishMany;
use crate::topic::registry::Publish;
use crate::topic::wire;

impl Connection {
    /// Queues a decoded publish (it counts as in flight from now on).
    pub(super) fn queue_publish(&mut self, p: Publish, id: Option<Bytes>) {
        self.inflight += 1;
        self.publishes.push((p, id));
    }

    /// Sends the queued publishes as one message; answers each, in order, in one write.
    pub(super) fn send_publishes(&mut self, ctx: &mut Context<Self>) {
        if self.publishes.is_empty() {
            return;
        }
        let n = self.publishes.len();
        // The next batch is likely as large: room for it at once, not by doubling.
        let batch = std::mem::replace(&mut self.publishes, Vec::with_capacity(n));
        let Some(topics) = self.services.topics.clone() else {
            self.inflight -= n;
            for (_, id) in batch {
                self.send_envelope(&wire::error(id.as_ref(), "topics are not served here"), ctx);
            }
            return;
        };
        // The records stay in memory until a partition has them: counted until answered.
        let mut held = Held::new(self.input.budget().clone());
        held.force(
            batch
                .iter()
                .flat_map(|(p, _)| &p.records)
                .map(|a| (a.value.len() + a.key.as_ref().map_or(0, |k| k.len())) as u64)
                .sum(),
        );
        let mut answers = Vec::with_capacity(n);
        let publishes = batch
            .into_iter()
            .map(|(p, id)| {
                // Only an acked publish names its topic again: no copy per unacked record.
                let topic = id.as_ref().map(|_| p.topic.clone()).unwrap_or_default();
                answers.push((id, topic));
                p
            })
            .collect();
        ctx.spawn(
            topics
                .send(PublishMany(publishes))
                .into_actor(self)
                .map(move |r, act, ctx| {
                    drop(held);
                    act.inflight -= n;
                    match r {
                        Ok(results) => {
                            for (res, (id, topic)) in results.into_iter().zip(answers) {
                                let reply = match res {
                                    Ok(p) => id.as_ref().map(|id| wire::ack(id, &topic, &p)),
                                    Err(why) => Some(wire::error(id.as_ref(), &why.to_string())),
                                };
                                if let Some(reply) = reply {
                                    act.send_envelope(&reply, ctx);
                                }
                            }
                        }
                        Err(e) => {
                            for (id, _) in answers {
                                act.send_envelope(&wire::error(id.as_ref(), &e.to_string()), ctx);
                            }
                        }
                    }
                    act.flush(ctx);
                    act.after_input(ctx);
                }),
        );
    }
}
