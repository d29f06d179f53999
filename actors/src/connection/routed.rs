//! Frames a connection does not answer itself: oversize envelopes (answered with an
//! error where the request has an answer) and RPC and event-bus frames (routed to the
//! driver host as `client:<id>`).

use actix::prelude::*;
use switchyard_codecs::{Envelope, Oversize};
use tracing::warn;

use super::Connection;
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

    /// RPC and event-bus frames go to the driver host; this connection's feature is
    /// `client:<id>`.
    pub(super) fn driver_frame(&mut self, env: Envelope, ctx: &mut Context<Self>) {
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
