//! Frames a connection does not answer itself: oversize envelopes (answered with an
//! error where the request has an answer) and RPC and event-bus frames (routed to the
//! driver host as `client:<id>`), after the permission checks of `rpc`, `eventbus`
//! and `chat` frames.

use actix::prelude::*;
use switchyard_codecs::{Envelope, Oversize};
use tracing::warn;

use super::login::denied;
use super::Connection;
use crate::auth::Kind;
use crate::drivers::FromClient;
use crate::stats::BrokerStats;
use crate::topic::wire;

impl Connection {
    /// An envelope over `broker.max_frame_bytes`, skipped whole by the codec: answered
    /// with an error where the request has an answer, and the connection goes on.
    pub(super) fn oversize(&mut self, o: Oversize, ctx: &mut Context<Self>) {
        BrokerStats::add(&self.stats.oversize_frames, 1);
        warn!(peer = %self.peer, offset = o.offset, size = o.size, max = o.max, channel = %o.channel, subject = %o.subject, "oversize frame skipped");
        let why = format!(
            "frame of {} bytes is over broker.max_frame_bytes ({})",
            o.size, o.max
        );
        let answer = match (o.channel.as_str(), o.subject.as_str()) {
            ("topic", _) => {
                // After the publishes read before it, like any other topic request.
                self.send_publishes(ctx);
                Some(wire::error(o.labels.get("id"), &why))
            }
            ("rpc", "call") => o.labels.get("rpcID").map(|id| {
                Envelope::new("rpc", "return")
                    .with_label("rpcID", id.clone())
                    .with_label("caller", format!("client:{}", self.id))
                    .with_label("error", why)
            }),
            _ => None,
        };
        if let Some(env) = answer {
            self.send_envelope(&env, ctx);
        }
    }

    /// RPC, event-bus and remote-driver (`driver`, `state`) frames go to the driver
    /// host; this connection's feature is `client:<id>`, or `driver:<name>` once its
    /// `driver hello` was accepted (the host tells them apart).
    pub(super) fn driver_frame(&mut self, mut env: Envelope, ctx: &mut Context<Self>) {
        if let Some((op, what)) = self.driver_refusal(&env) {
            let why = denied(op, &what);
            let answer = if env.is("rpc", "call") {
                let Some(id) = env.labels.get("rpcID").cloned() else {
                    // No answer is asked for; the call still goes nowhere.
                    return self.stats.auth.denied(op);
                };
                Envelope::new("rpc", "return")
                    .with_label("rpcID", id)
                    .with_label("caller", format!("client:{}", self.id))
                    .with_label("error", why)
            } else {
                let e = Envelope::new(env.channel.clone(), "error").with_label("error", why);
                match env.labels.get("id") {
                    Some(id) => e.with_label("id", id.clone()),
                    None => e,
                }
            };
            return self.refuse(op, &answer, ctx);
        }
        let Some(host) = self.services.drivers.clone() else {
            if env.is("rpc", "call") {
                if let Some(id) = env.labels.get("rpcID").cloned() {
                    let ret = Envelope::new("rpc", "return")
                        .with_label("rpcID", id)
                        .with_label("caller", format!("client:{}", self.id))
                        .with_label("error", "no drivers configured");
                    self.send_envelope(&ret, ctx);
                }
            }
            return;
        };
        self.talks_to_drivers = true;
        if env.is("rpc", "register") || env.is("driver", "hello") {
            // What discovery, `drivers` and the tree show: the broker's view of the
            // peer, never the client's own label.
            env.labels.insert("peer", self.peer.to_string());
        }
        let msg = FromClient {
            id: self.id,
            to: ctx.address().recipient(),
            env,
        };
        if let Err(e) = host.try_send(msg) {
            warn!(peer = %self.peer, error = %e, "driver host busy, frame dropped");
        }
    }
}

/// The parameters of the `broker` feature's `publish` and `fetch` a permission needs.
#[derive(Debug, serde::Deserialize)]
struct TopicParam {
    topic: String,
}

impl Connection {
    /// The operation `env` would do without permission, and on what; `None`: allowed.
    /// A refused frame never reaches the driver host.
    fn driver_refusal(&mut self, env: &Envelope) -> Option<(&'static str, String)> {
        if self.login.unrestricted() {
            return None;
        }
        match (&*env.channel, &*env.subject) {
            ("rpc", "call") => {
                let feature = env.labels.get_str("feature").unwrap_or_default();
                if feature == "broker" {
                    return self.broker_method_refusal(env);
                }
                (!self.may(Kind::Call, feature)).then(|| ("call", format!("feature `{feature}`")))
            }
            ("rpc", "register" | "unregister") => {
                let feature = env.labels.get_str("feature").unwrap_or_default();
                (!self.may(Kind::Serve, feature)).then(|| ("serve", format!("feature `{feature}`")))
            }
            ("eventbus", "subscribe") => (!self.may(Kind::Subscribe, "eventbus"))
                .then(|| ("subscribe", "topic `eventbus`".to_string())),
            ("eventbus", "message" | "return") => (!self.may(Kind::Publish, "eventbus"))
                .then(|| ("publish", "topic `eventbus`".to_string())),
            ("driver", "hello") => (!self.may_admin()).then(|| {
                let name = env.labels.get_str("name").unwrap_or_default();
                ("admin", format!("driver hello as `{name}` (admin only)"))
            }),
            ("chat", _) => {
                let adapter = env.labels.get_str("adapter").unwrap_or_default();
                let feature = format!("chat:{adapter}");
                (!self.may_admin() && !self.may(Kind::Call, &feature))
                    .then(|| ("chat", format!("adapter `{adapter}`")))
            }
            _ => None,
        }
    }

    /// The `broker` feature: `ping` for everyone, `publish` and `fetch` by the topic they
    /// name, every other method (`tree`, `drivers`, ...) for admins.
    fn broker_method_refusal(&mut self, env: &Envelope) -> Option<(&'static str, String)> {
        let method = env.labels.get_str("method").unwrap_or_default();
        let (op, kind) = match method {
            "ping" => return None,
            "publish" => ("publish", Kind::Publish),
            "fetch" => ("fetch", Kind::Subscribe),
            other => {
                return (!self.may_admin())
                    .then(|| ("admin", format!("method `broker.{other}` (admin only)")))
            }
        };
        // A payload without a topic is refused by the method itself.
        let topic = serde_json::from_slice::<TopicParam>(&env.payload)
            .ok()?
            .topic;
        (!self.may(kind, &topic)).then(|| (op, format!("topic `{topic}`")))
    }
}
