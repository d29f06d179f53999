//! `topic delete` (an admin request) and what a subscriber is told when the topic it
//! reads is deleted.

use actix::prelude::*;
use bytes::Bytes;
use switchyard_codecs::Envelope;

use super::topics::{flat, with_id};
use super::Connection;
use crate::topic::registry::DeleteTopic;
use crate::topic::subscribers::Deliveries;
use crate::topic::{wire, TopicRegistry};

impl Connection {
    /// Deletes `topic`: answered `topic deleted` once its files are gone.
    pub(super) fn delete_topic(
        &mut self,
        topic: String,
        id: Option<Bytes>,
        topics: &Addr<TopicRegistry>,
        ctx: &mut Context<Self>,
    ) {
        let msg = DeleteTopic {
            topic: topic.clone(),
        };
        self.request(topics, msg, ctx, move |_, r, _| {
            Some(match flat(r) {
                Ok(()) => with_id(
                    Envelope::new("topic", "deleted").with_label("topic", topic),
                    id.as_ref(),
                ),
                Err(why) => wire::error(id.as_ref(), &why),
            })
        });
    }

    /// The topic of subscription `d.sub` was deleted: the subscription has ended, and
    /// the client is told once (each partition and the group send this notice).
    pub(super) fn topic_deleted(&mut self, d: &Deliveries, ctx: &mut Context<Self>) {
        let Some(state) = self.subs.remove(&d.sub) else {
            return;
        };
        self.forget(&d.sub, state);
        let e = wire::error(None, &format!("topic `{}` was deleted", d.topic))
            .with_label("sub", d.sub.clone())
            .with_label("topic", d.topic.clone());
        self.send_envelope(&e, ctx);
        self.flush(ctx);
    }
}
