//! The `topic` channel on a broker-port connection: publish, create, list,
//! subscribe (alone or in a consumer group), credit, commit, unsubscribe, and the
//! deliveries and assignments that come back.

use actix::dev::ToEnvelope;
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use switchyard_codecs::number::parse_u64;
use switchyard_codecs::Envelope;

use super::login::denied;
use super::{Connection, SubState};
use crate::auth::Kind;
use crate::topic::deliver_batch::{encode_deliver_batches, MAX_DELIVER_BATCH};
use crate::topic::registry::groups::{Assignment, Commit, JoinGroup, LeaveGroup};
use crate::topic::registry::{CreateTopic, ListTopics, SubscribeTopic, TopicRegistry};
use crate::topic::subscribers::{Credit, Deliveries, StartAt, SubKey, Unsubscribe};
use crate::topic::wire;

/// Queued answers are written once this much has piled up, even with more to come.
pub(super) const ANSWER_BATCH_BYTES: usize = 64 << 10;

/// Credit a subscription starts with when the client gives none.
const DEFAULT_CREDIT: u64 = 1000;

fn num(env: &Envelope, name: &str) -> Result<Option<u64>, String> {
    env.labels
        .get(name)
        .map(|v| parse_u64(v).map_err(|e| format!("label {name}: {}", e.as_str())))
        .transpose()
}

pub(super) fn flat<T, E: std::fmt::Display>(
    r: Result<Result<T, E>, MailboxError>,
) -> Result<T, String> {
    r.map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
}

/// `e` with the request's `id`, when it had one: every answer repeats it.
pub(super) fn with_id(e: Envelope, id: Option<&Bytes>) -> Envelope {
    match id {
        Some(id) => e.with_label("id", id.clone()),
        None => e,
    }
}

impl Connection {
    /// Sends `msg` to the registry, counts it in flight, and queues what `answer`
    /// makes of the reply.
    pub(super) fn request<M, F>(
        &mut self,
        to: &Addr<TopicRegistry>,
        msg: M,
        ctx: &mut Context<Self>,
        answer: F,
    ) where
        M: Message + Send + 'static,
        M::Result: Send,
        TopicRegistry: Handler<M>,
        <TopicRegistry as Actor>::Context: ToEnvelope<TopicRegistry, M>,
        F: FnOnce(
                &mut Self,
                Result<M::Result, MailboxError>,
                &mut Context<Self>,
            ) -> Option<Envelope>
            + 'static,
    {
        self.inflight += 1;
        ctx.spawn(to.send(msg).into_actor(self).map(move |r, act, ctx| {
            act.inflight -= 1;
            if let Some(reply) = answer(act, r, ctx) {
                act.send_envelope(&reply, ctx);
            }
            // Answers to a burst of requests leave together: written when the last
            // is in, when enough has piled up, or at the end of the turn in which they
            // became ready (a write batch of a partition answers many at once).
            if act.inflight == 0 || act.sock.queued() >= ANSWER_BATCH_BYTES {
                act.flush(ctx);
            } else if !act.flush_due {
                act.flush_due = true;
                ctx.notify(super::FlushAnswers);
            }
            act.after_input(ctx);
        }));
    }

    /// A request on the `topic` channel. Every failure is answered with `topic error`
    /// (with the request's `id`), and the connection stays usable.
    pub(super) fn topic_request(&mut self, env: Envelope, ctx: &mut Context<Self>) {
        let id = env.labels.get("id").cloned();
        if self.services.topics.is_none() {
            return self
                .send_envelope(&wire::error(id.as_ref(), "topics are not served here"), ctx);
        }
        if &*env.subject != "publish" {
            // Keep the order: publishes read before this request go first.
            self.send_publishes(ctx);
        }
        if let Some((op, topic)) = self.topic_refusal(&env) {
            if op == "publish" {
                // Answered after the publishes read before it, like any other error.
                self.send_publishes(ctx);
            }
            let why = denied(op, &format!("topic `{topic}`"));
            return self.refuse(op, &wire::error(id.as_ref(), &why), ctx);
        }
        if &*env.subject == "publish" {
            // The hot path: one per record when clients publish one record an envelope.
            let ts = self.clock_ms();
            return match wire::publish(&env, env.payload.len() / 4 + 1, ts) {
                Ok(p) => self.queue_publish(p, id),
                Err(why) => self.send_envelope(&wire::error(id.as_ref(), &why), ctx),
            };
        }
        let Some(topics) = self.services.topics.clone() else {
            return;
        };
        let outcome = match &*env.subject {
            "create" => wire::topic_of(&env)
                .and_then(|name| {
                    let (retention_ms, retention_bytes) = wire::retention(&env)?;
                    Ok(CreateTopic {
                        name,
                        partitions: wire::partitions(&env)?,
                        routing: wire::routing(&env)?,
                        fsync: wire::fsync(&env)?,
                        retention_ms,
                        retention_bytes,
                    })
                })
                .map(|c| {
                    let name = c.name.clone();
                    self.request(&topics, c, ctx, move |_, r, _| {
                        Some(match flat(r) {
                            Ok(()) => with_id(
                                Envelope::new("topic", "created").with_label("topic", name),
                                id.as_ref(),
                            ),
                            Err(why) => wire::error(id.as_ref(), &why),
                        })
                    });
                }),
            "list" => {
                self.request(&topics, ListTopics, ctx, move |act, r, _| {
                    let mut list = r.unwrap_or_default();
                    list.retain(|t| act.may(Kind::Subscribe, &t.name));
                    let json = serde_json::to_vec(&list).unwrap_or_default();
                    let e = Envelope::new("topic", "list").with_payload(json);
                    Some(with_id(e, id.as_ref()))
                });
                Ok(())
            }
            "subscribe" => self.subscribe(&env, id.clone(), &topics, ctx),
            "credit" => self.credit(&env),
            "commit" => (|| -> Result<Commit, String> {
                let need = |n: &str| num(&env, n)?.ok_or_else(|| format!("missing label {n}"));
                let group = env
                    .labels
                    .get_str("group")
                    .ok_or("missing label group")?
                    .to_string();
                let partition =
                    u32::try_from(need("partition")?).map_err(|_| "partition too large")?;
                Ok(Commit {
                    group,
                    topic: wire::topic_of(&env)?,
                    partition,
                    offset: need("offset")?,
                })
            })()
            .map(|c| {
                let (group, partition, offset) = (c.group.clone(), c.partition, c.offset);
                let topic = c.topic.clone();
                self.request(&topics, c, ctx, move |_, r, _| {
                    Some(match flat(r) {
                        Ok(()) => with_id(
                            Envelope::new("topic", "committed")
                                .with_label("topic", topic)
                                .with_label("group", group)
                                .with_label("partition", partition.to_string())
                                .with_label("offset", offset.to_string()),
                            id.as_ref(),
                        ),
                        Err(why) => wire::error(id.as_ref(), &why),
                    })
                });
            }),
            "unsubscribe" => self.unsubscribe(&env, ctx),
            "delete" => {
                wire::topic_of(&env).map(|t| self.delete_topic(t, id.clone(), &topics, ctx))
            }
            other => Err(format!("unknown request `topic {other}`")),
        };
        if let Err(why) = outcome {
            let id = env.labels.get("id");
            self.send_envelope(&wire::error(id, &why), ctx);
        }
    }

    /// The operation this request would do without permission, and on which topic.
    fn topic_refusal(&mut self, env: &Envelope) -> Option<(&'static str, String)> {
        if self.login.unrestricted() {
            return None;
        }
        let (op, kind) = match &*env.subject {
            "publish" => ("publish", Some(Kind::Publish)),
            "subscribe" => ("subscribe", Some(Kind::Subscribe)),
            "commit" => ("commit", Some(Kind::Subscribe)),
            "create" => ("create", None),
            "delete" => ("delete", None),
            _ => return None,
        };
        // A request without a topic is refused by its own checks.
        let topic = env.labels.get_str("topic")?;
        let allowed = match kind {
            Some(kind) => self.may(kind, topic),
            None => self.may_admin(),
        };
        (!allowed).then(|| (op, topic.to_string()))
    }

    fn subscribe(
        &mut self,
        env: &Envelope,
        id: Option<Bytes>,
        topics: &Addr<TopicRegistry>,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        let topic = wire::topic_of(env)?;
        let group = env.labels.get_str("group").map(str::to_string);
        let start = match env.labels.get_str("from") {
            None if group.is_some() => StartAt::Earliest,
            None | Some("latest") => StartAt::Latest,
            Some("earliest") => StartAt::Earliest,
            Some("committed") if group.is_some() => StartAt::Earliest,
            Some("committed") => return Err("from=committed needs a group".into()),
            Some(_) if group.is_some() => {
                return Err("a group member starts at the group's committed offsets".into())
            }
            Some(o) => StartAt::Offset(parse_u64(o.as_bytes()).map_err(|_| {
                format!("from: expected earliest, latest, committed or an offset, got `{o}`")
            })?),
        };
        let sub = env.labels.get_str("sub").map_or_else(
            || format!("{topic}-{}", self.subs.len() + 1),
            str::to_string,
        );
        if self.subs.contains_key(&sub) {
            return Err(format!("subscription `{sub}` exists on this connection"));
        }
        let credit = num(env, "credit")?.unwrap_or(DEFAULT_CREDIT);
        let batch = match num(env, "batch")?.unwrap_or(1) {
            b @ 1..=MAX_DELIVER_BATCH => b as usize,
            b => return Err(format!("batch must be 1 to {MAX_DELIVER_BATCH}, not {b}")),
        };
        let key = SubKey {
            conn: self.id,
            sub: sub.clone(),
        };
        // Known before any reply or assignment can arrive.
        self.subs.insert(
            sub.clone(),
            SubState {
                group: group.clone(),
                credit,
                batch,
                partitions: Vec::new(),
                confirmed: false,
                early: None,
            },
        );
        let subscribed = move |group: Option<String>| {
            let mut e = Envelope::new("topic", "subscribed")
                .with_label("sub", sub.clone())
                .with_label("topic", topic.clone());
            if let Some(g) = group {
                e = e.with_label("group", g);
            }
            if let Some(id) = &id {
                e = e.with_label("id", id.clone());
            }
            e
        };
        let to = ctx.address().recipient();
        match group {
            Some(g) => {
                let join = JoinGroup {
                    group: g.clone(),
                    topic: wire::topic_of(env)?,
                    key: key.clone(),
                    to,
                    notify: ctx.address().recipient(),
                    start,
                    window: Some(self.window.clone()),
                };
                self.request(topics, join, ctx, move |act, r, ctx| match flat(r) {
                    Ok(()) => {
                        act.send_envelope(&subscribed(Some(g)), ctx);
                        let early = act.subs.get_mut(&key.sub).and_then(|s| {
                            s.confirmed = true;
                            s.early.take()
                        });
                        if let Some(a) = early {
                            act.assigned(a, ctx);
                        }
                        None
                    }
                    Err(why) => {
                        act.subs.remove(&key.sub);
                        Some(wire::error(None, &why))
                    }
                });
            }
            None => {
                let request = SubscribeTopic {
                    topic: wire::topic_of(env)?,
                    partition: num(env, "partition")?.map(|p| u32::try_from(p).unwrap_or(u32::MAX)),
                    key: key.clone(),
                    to,
                    start,
                    // Credit is granted once `subscribed` is queued, so it comes first.
                    credit: 0,
                    window: Some(self.window.clone()),
                };
                self.request(topics, request, ctx, move |act, r, ctx| match flat(r) {
                    Ok(parts) => {
                        let starts: Vec<String> =
                            parts.iter().map(|(p, o, _)| format!("{p}:{o}")).collect();
                        let e = subscribed(None).with_label("partitions", starts.join(","));
                        let assigned: Vec<_> = parts.into_iter().map(|(p, _, a)| (p, a)).collect();
                        // Queue `subscribed` before any delivery the credit releases.
                        act.send_envelope(&e, ctx);
                        if let Some(s) = act.subs.get_mut(&key.sub) {
                            s.confirmed = true;
                        }
                        act.assign(&key.sub, assigned);
                        None
                    }
                    Err(why) => {
                        act.subs.remove(&key.sub);
                        Some(wire::error(None, &why))
                    }
                });
            }
        }
        Ok(())
    }

    /// Takes `partitions` as what subscription `sub` reads now: grants its credit to
    /// the ones that are new, forgets the ones that went.
    fn assign(&mut self, sub: &str, partitions: Vec<(u32, Addr<crate::topic::Partition>)>) {
        let Some(state) = self.subs.get_mut(sub) else {
            return;
        };
        let key = SubKey {
            conn: self.id,
            sub: sub.to_string(),
        };
        for (p, addr) in &partitions {
            if !state.partitions.iter().any(|(q, _)| q == p) {
                let _ = addr.try_send(Credit {
                    key: key.clone(),
                    n: state.credit,
                });
            }
        }
        state.partitions = partitions;
    }

    fn credit(&mut self, env: &Envelope) -> Result<(), String> {
        let sub = env.labels.get_str("sub").unwrap_or_default().to_string();
        let n = num(env, "credit")?.ok_or("missing label credit")?;
        let partition = num(env, "partition")?;
        let state = self
            .subs
            .get(&sub)
            .ok_or_else(|| format!("no subscription `{sub}`"))?;
        for (p, addr) in &state.partitions {
            if partition.is_none_or(|want| want == u64::from(*p)) {
                // A full partition mailbox drops this grant; the client grants again.
                let _ = addr.try_send(Credit {
                    key: SubKey {
                        conn: self.id,
                        sub: sub.clone(),
                    },
                    n,
                });
            }
        }
        Ok(())
    }

    fn unsubscribe(&mut self, env: &Envelope, ctx: &mut Context<Self>) -> Result<(), String> {
        let sub = env.labels.get_str("sub").unwrap_or_default().to_string();
        let state = self
            .subs
            .remove(&sub)
            .ok_or_else(|| format!("no subscription `{sub}`"))?;
        self.forget(&sub, state);
        let e = Envelope::new("topic", "unsubscribed").with_label("sub", sub);
        self.send_envelope(&with_id(e, env.labels.get("id")), ctx);
        Ok(())
    }

    /// Tells the partitions (and the group) that subscription `sub` is gone.
    pub(super) fn forget(&mut self, sub: &str, state: SubState) {
        let key = SubKey {
            conn: self.id,
            sub: sub.to_string(),
        };
        if state.group.is_some() {
            if let Some(topics) = &self.services.topics {
                let _ = topics.try_send(LeaveGroup { key: key.clone() });
            }
        }
        for (_, addr) in state.partitions {
            let _ = addr.try_send(Unsubscribe { key: key.clone() });
        }
    }
}

impl Handler<Assignment> for Connection {
    type Result = ();

    /// A group rebalanced: read these partitions now, and tell the client (after its
    /// `topic subscribed`).
    fn handle(&mut self, a: Assignment, ctx: &mut Self::Context) {
        match self.subs.get_mut(&a.sub) {
            None => {}
            Some(s) if !s.confirmed => s.early = Some(a),
            Some(_) => self.assigned(a, ctx),
        }
    }
}

impl Connection {
    fn assigned(&mut self, a: Assignment, ctx: &mut Context<Self>) {
        let list: Vec<String> = a.partitions.iter().map(|(p, _)| p.to_string()).collect();
        self.assign(&a.sub, a.partitions);
        let e = Envelope::new("topic", "assigned")
            .with_label("sub", a.sub)
            .with_label("topic", a.topic)
            .with_label("partitions", list.join(","));
        self.send_envelope(&e, ctx);
        self.flush(ctx);
    }
}

impl Handler<Deliveries> for Connection {
    type Result = ();

    /// Each record becomes a `topic deliver`, or each run of up to `batch` records of a
    /// subscription made with `batch`; all of them leave in one write.
    fn handle(&mut self, d: Deliveries, ctx: &mut Self::Context) {
        // From here the records are counted as queued output instead.
        self.window.release(d.charged);
        if d.deleted {
            return self.topic_deleted(&d, ctx);
        }
        let mut buf = BytesMut::with_capacity(
            d.records
                .iter()
                .map(|r| r.value.len() + 96 + d.sub.len() + d.topic.len())
                .sum(),
        );
        let batch = self.subs.get(&d.sub).map_or(1, |s| s.batch);
        let frames = if batch > 1 {
            encode_deliver_batches(&mut buf, &d.sub, &d.topic, d.partition, &d.records, batch)
        } else {
            wire::encode_deliveries(&mut buf, &d.sub, &d.topic, d.partition, &d.records);
            d.records.len()
        };
        crate::stats::BrokerStats::add(&self.stats.records_delivered, d.records.len() as u64);
        crate::stats::BrokerStats::add(&self.stats.frames_out, frames as u64);
        // Paced by the connection's window, not refused by the output budget: records
        // can be read again, so a slow reader is held back, never cut off.
        self.sock.push_paced(buf.freeze());
        if let Some(u) = d.unreadable {
            // The partition ended this subscription there; the client may subscribe
            // again from `last + 1`.
            let mut e = wire::error(None, &format!("topic {} {}", d.topic, u.reason))
                .with_label("sub", d.sub.clone())
                .with_label("topic", d.topic.clone())
                .with_label("partition", d.partition.to_string())
                .with_label("first", u.first.to_string());
            if let Some(last) = u.last {
                e = e.with_label("last", last.to_string());
            }
            self.send_envelope(&e, ctx);
        }
        self.flush(ctx);
    }
}
