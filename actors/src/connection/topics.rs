//! The `topic` channel on a broker-port connection: publish, create, list,
//! subscribe, credit, unsubscribe, and the deliveries that come back.

use actix::prelude::*;
use bytes::BytesMut;
use switchyard_codecs::number::parse_u64;
use switchyard_codecs::Envelope;

use super::Connection;
use crate::topic::registry::{CreateTopic, ListTopics, SubscribeTopic};
use crate::topic::subscribers::{Credit, Deliveries, StartAt, SubKey, Unsubscribe};
use crate::topic::wire;

/// Credit a subscription starts with when the client gives none.
const DEFAULT_CREDIT: u64 = 1000;

impl Connection {
    /// A request on the `topic` channel; answered with `topic ack`, `topic created`,
    /// `topic list` or `topic error`, and the connection stays usable either way.
    pub(super) fn topic_request(&mut self, env: Envelope, ctx: &mut Context<Self>) {
        let id = env.labels.get("id").cloned();
        let Some(topics) = self.services.topics.clone() else {
            return self
                .send_envelope(&wire::error(id.as_ref(), "topics are not served here"), ctx);
        };
        match &*env.subject {
            "publish" => {
                let publish = match wire::publish(&env, env.payload.len() / 4 + 1) {
                    Ok(p) => p,
                    Err(why) => return self.send_envelope(&wire::error(id.as_ref(), &why), ctx),
                };
                let topic = publish.topic.clone();
                self.inflight += 1;
                let fut = topics
                    .send(publish)
                    .into_actor(self)
                    .map(move |r, act, ctx| {
                        act.inflight -= 1;
                        let reply = match r.map_err(|e| e.to_string()).and_then(|r| r) {
                            Ok(p) => id.as_ref().map(|id| wire::ack(id, &topic, &p)),
                            Err(why) => Some(wire::error(id.as_ref(), &why)),
                        };
                        if let Some(reply) = reply {
                            act.send_envelope(&reply, ctx);
                        }
                        act.flush(ctx);
                        act.after_input(ctx);
                    });
                ctx.spawn(fut);
            }
            "create" => {
                let create = wire::topic_of(&env).and_then(|name| {
                    Ok(CreateTopic {
                        name,
                        partitions: wire::partitions(&env)?,
                        routing: wire::routing(&env)?,
                    })
                });
                let create = match create {
                    Ok(c) => c,
                    Err(why) => return self.send_envelope(&wire::error(id.as_ref(), &why), ctx),
                };
                let name = create.name.clone();
                self.inflight += 1;
                ctx.spawn(
                    topics
                        .send(create)
                        .into_actor(self)
                        .map(move |r, act, ctx| {
                            act.inflight -= 1;
                            let reply = match r.map_err(|e| e.to_string()).and_then(|r| r) {
                                Ok(()) => {
                                    Envelope::new("topic", "created").with_label("topic", name)
                                }
                                Err(why) => wire::error(id.as_ref(), &why),
                            };
                            act.send_envelope(&reply, ctx);
                            act.flush(ctx);
                            act.after_input(ctx);
                        }),
                );
            }
            "list" => {
                self.inflight += 1;
                ctx.spawn(
                    topics
                        .send(ListTopics)
                        .into_actor(self)
                        .map(move |r, act, ctx| {
                            act.inflight -= 1;
                            let json =
                                serde_json::to_vec(&r.unwrap_or_default()).unwrap_or_default();
                            act.send_envelope(
                                &Envelope::new("topic", "list").with_payload(json),
                                ctx,
                            );
                            act.flush(ctx);
                            act.after_input(ctx);
                        }),
                );
            }
            "subscribe" => self.subscribe(env, id, topics, ctx),
            "credit" => self.credit(&env, id, ctx),
            "unsubscribe" => self.unsubscribe(&env, id, ctx),
            other => {
                let why = format!("unknown request `topic {other}`");
                self.send_envelope(&wire::error(id.as_ref(), &why), ctx);
            }
        }
    }

    fn subscribe(
        &mut self,
        env: Envelope,
        id: Option<bytes::Bytes>,
        topics: Addr<crate::topic::TopicRegistry>,
        ctx: &mut Context<Self>,
    ) {
        let parsed = (|| -> Result<(SubscribeTopic, u64), String> {
            let topic = wire::topic_of(&env)?;
            let num = |name: &str| -> Result<Option<u64>, String> {
                env.labels
                    .get(name)
                    .map(|v| parse_u64(v).map_err(|e| format!("label {name}: {}", e.as_str())))
                    .transpose()
            };
            let start = match env.labels.get_str("from") {
                None | Some("latest") => StartAt::Latest,
                Some("earliest") => StartAt::Earliest,
                Some(o) => StartAt::Offset(parse_u64(o.as_bytes()).map_err(|_| {
                    format!("from: expected earliest, latest or an offset, got `{o}`")
                })?),
            };
            let sub = env.labels.get_str("sub").map_or_else(
                || format!("{topic}-{}", self.subs.len() + 1),
                str::to_string,
            );
            if self.subs.contains_key(&sub) {
                return Err(format!("subscription `{sub}` exists on this connection"));
            }
            let credit = num("credit")?.unwrap_or(DEFAULT_CREDIT);
            let request = SubscribeTopic {
                topic,
                partition: num("partition")?.map(|p| u32::try_from(p).unwrap_or(u32::MAX)),
                key: SubKey { conn: self.id, sub },
                to: ctx.address().recipient(),
                start,
                // Credit is granted once `subscribed` is queued, so it comes first.
                credit: 0,
            };
            Ok((request, credit))
        })();
        let (request, credit) = match parsed {
            Ok(r) => r,
            Err(why) => return self.send_envelope(&wire::error(id.as_ref(), &why), ctx),
        };
        let (sub, topic) = (request.key.sub.clone(), request.topic.clone());
        self.inflight += 1;
        ctx.spawn(
            topics
                .send(request)
                .into_actor(self)
                .map(move |r, act, ctx| {
                    act.inflight -= 1;
                    let reply = match r.map_err(|e| e.to_string()).and_then(|r| r) {
                        Ok(parts) => {
                            let starts: Vec<String> =
                                parts.iter().map(|(p, o, _)| format!("{p}:{o}")).collect();
                            for (_, _, addr) in &parts {
                                let _ = addr.try_send(Credit {
                                    key: SubKey {
                                        conn: act.id,
                                        sub: sub.clone(),
                                    },
                                    n: credit,
                                });
                            }
                            act.subs.insert(
                                sub.clone(),
                                parts.into_iter().map(|(p, _, a)| (p, a)).collect(),
                            );
                            let mut e = Envelope::new("topic", "subscribed")
                                .with_label("sub", sub)
                                .with_label("topic", topic)
                                .with_label("partitions", starts.join(","));
                            if let Some(id) = &id {
                                e = e.with_label("id", id.clone());
                            }
                            e
                        }
                        Err(why) => wire::error(id.as_ref(), &why),
                    };
                    act.send_envelope(&reply, ctx);
                    act.flush(ctx);
                    act.after_input(ctx);
                }),
        );
    }

    fn credit(&mut self, env: &Envelope, id: Option<bytes::Bytes>, ctx: &mut Context<Self>) {
        let sub = env.labels.get_str("sub").unwrap_or_default().to_string();
        let n = env.labels.get("credit").and_then(|v| parse_u64(v).ok());
        let partition = env.labels.get("partition").and_then(|v| parse_u64(v).ok());
        let (Some(parts), Some(n)) = (self.subs.get(&sub), n) else {
            let why = format!("credit needs a known sub and a credit count (sub `{sub}`)");
            return self.send_envelope(&wire::error(id.as_ref(), &why), ctx);
        };
        for (p, addr) in parts {
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
    }

    fn unsubscribe(&mut self, env: &Envelope, id: Option<bytes::Bytes>, ctx: &mut Context<Self>) {
        let sub = env.labels.get_str("sub").unwrap_or_default().to_string();
        let Some(parts) = self.subs.remove(&sub) else {
            return self.send_envelope(
                &wire::error(id.as_ref(), &format!("no subscription `{sub}`")),
                ctx,
            );
        };
        for (_, addr) in parts {
            let _ = addr.try_send(Unsubscribe {
                key: SubKey {
                    conn: self.id,
                    sub: sub.clone(),
                },
            });
        }
        self.send_envelope(
            &Envelope::new("topic", "unsubscribed").with_label("sub", sub),
            ctx,
        );
    }
}

impl Handler<Deliveries> for Connection {
    type Result = ();

    /// Each record becomes a `topic deliver`; all of them leave in one write.
    fn handle(&mut self, d: Deliveries, ctx: &mut Self::Context) {
        let mut buf = BytesMut::new();
        for r in &d.records {
            let mut e = Envelope::new("topic", "deliver")
                .with_label("sub", d.sub.clone())
                .with_label("topic", d.topic.clone())
                .with_label("partition", d.partition.to_string())
                .with_label("offset", r.offset.to_string())
                .with_label("timestamp", r.timestamp_ms.to_string());
            if let Some(k) = &r.key {
                e = e.with_label("key", k.clone());
            }
            for (n, v) in r.labels.iter() {
                e.labels.insert(n, v.clone());
            }
            e.payload = r.value.clone();
            if e.encode(&mut buf).is_err() {
                continue;
            }
        }
        let extra = (d.records.len() as u64).saturating_sub(1);
        crate::stats::BrokerStats::add(&self.stats.frames_out, extra);
        self.reply(&buf, ctx);
        self.flush(ctx);
    }
}
