//! How [`DriverHost`] serves named services: `rpc register` / `rpc unregister` from TCP
//! clients, calls to `svc:<name>` sent to one instance (see [`super::services`]), and
//! the calls of an instance that leaves answered at once with an error, or moved to
//! another instance when the caller said `retry`.
//!
//! A call to a service is recorded as a call to the instance's `client:<id>`, so the
//! forged-return protection of [`super::rpc`] takes its return only from that instance.

use std::time::Instant;

use actix::prelude::*;
use switchyard_codecs::Envelope;
use tracing::{debug, info, warn};

use super::host::DriverHost;
use super::services::{
    Registration, ServiceCall, ServiceView, DEFAULT_MAX_INFLIGHT, MAX_INFLIGHT_LIMIT,
};

/// Every service, its instances and counters.
#[derive(Debug, Message)]
#[rtype(result = "Vec<ServiceView>")]
pub struct ListServices;

impl Handler<ListServices> for DriverHost {
    type Result = MessageResult<ListServices>;

    fn handle(&mut self, _: ListServices, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.service_table.view())
    }
}

/// Is `feature` a service name (`svc:` and a name without spaces)?
pub fn is_service(feature: &str) -> bool {
    feature
        .strip_prefix("svc:")
        .is_some_and(|n| !n.is_empty() && !n.contains(char::is_whitespace))
}

/// The caller asked for its call to be moved when its instance leaves (an idempotent
/// call): the label `retry` with `true`, `yes` or `1`.
fn wants_retry(env: &Envelope) -> bool {
    matches!(env.labels.get_str("retry"), Some("true" | "yes" | "1"))
}

impl DriverHost {
    /// `rpc register` and `rpc unregister`, answered on the client's connection.
    pub(super) fn service_frame(&mut self, from: &str, env: Envelope, ctx: &mut Context<Self>) {
        let Some(client) = from
            .strip_prefix("client:")
            .and_then(|c| c.parse::<u64>().ok())
        else {
            debug!(from = %from, "only a TCP client can register a service, frame dropped");
            return;
        };
        let feature = env
            .labels
            .get_str("feature")
            .unwrap_or_default()
            .to_string();
        let answer = if env.subject == "register" {
            self.register(client, &feature, &env)
        } else {
            self.unregister(client, &feature, ctx)
        };
        let answer = answer.unwrap_or_else(|why| {
            let e = Envelope::new("rpc", "error")
                .with_label("feature", feature.clone())
                .with_label("error", why);
            match env.labels.get("id") {
                Some(id) => e.with_label("id", id.clone()),
                None => e,
            }
        });
        if let Err(e) = self.deliver(from, answer, ctx, None) {
            debug!(client, error = %e, "service answer undeliverable");
        }
    }

    fn register(&mut self, client: u64, feature: &str, env: &Envelope) -> Result<Envelope, String> {
        if !is_service(feature) {
            return Err(format!(
                "rpc register needs a feature svc:<name>, not `{feature}`"
            ));
        }
        let most = self
            .settings
            .service_max_inflight
            .clamp(1, MAX_INFLIGHT_LIMIT);
        let max_inflight = match env.labels.get_str("max_inflight") {
            None => DEFAULT_MAX_INFLIGHT.min(most),
            Some(m) => m
                .parse::<u32>()
                .ok()
                .filter(|m| (1..=most).contains(m))
                .ok_or_else(|| {
                    format!(
                        "max_inflight `{m}` is not a number from 1 to {most} (drivers.service_max_inflight)"
                    )
                })?,
        };
        let label = |name: &str| {
            env.labels
                .get_str(name)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let reg = Registration {
            service: feature.to_string(),
            group: label("group"),
            max_inflight,
            id: label("id"),
            peer: label("peer").unwrap_or_default(),
        };
        let peer = reg.peer.clone();
        let (group, id) = self.service_table.register(client, reg)?;
        info!(service = %feature, group = %group, id = %id, client, peer = %peer, max_inflight, "service instance registered");
        Ok(Envelope::new("rpc", "registered")
            .with_label("feature", feature.to_string())
            .with_label("group", group)
            .with_label("id", id)
            .with_label("max_inflight", max_inflight.to_string()))
    }

    fn unregister(
        &mut self,
        client: u64,
        feature: &str,
        ctx: &mut Context<Self>,
    ) -> Result<Envelope, String> {
        if !self.service_table.unregister(client, feature) {
            return Err(format!("this connection does not serve `{feature}`"));
        }
        info!(service = %feature, client, "service instance unregistered");
        self.instance_left(client, Some(feature), ctx);
        Ok(Envelope::new("rpc", "unregistered").with_label("feature", feature.to_string()))
    }

    /// A client connection closed: its instances go, and their calls with them.
    pub(super) fn client_left(&mut self, client: u64, ctx: &mut Context<Self>) {
        self.service_table.remove_client(client);
        self.instance_left(client, None, ctx);
    }

    /// Answers (or, with `retry`, moves) the calls in flight to an instance that left.
    fn instance_left(&mut self, client: u64, service: Option<&str>, ctx: &mut Context<Self>) {
        for ((caller, id), call) in self.service_table.take_calls_to(client, service) {
            if !self.rpc.is_pending(&caller, &id) {
                continue;
            }
            let why = match call.retry {
                Some(env) => match self.service_table.pick_again(&call.service, client) {
                    Ok(next) => {
                        debug!(caller = %caller, rpc_id = %id, service = %call.service, from = client, to = next, "call moved to another instance");
                        let started = call.started;
                        self.send_to_instance(
                            caller,
                            id,
                            call.service,
                            next,
                            env,
                            true,
                            started,
                            ctx,
                        );
                        continue;
                    }
                    Err(e) => format!("{e} (its instance left before it answered)"),
                },
                None => format!(
                    "service {}: its instance left before it answered",
                    call.service
                ),
            };
            warn!(caller = %caller, rpc_id = %id, service = %call.service, client, "service call lost with its instance");
            self.service_table.failed(&call.service);
            self.finish(&caller, &id, Err(why), ctx);
        }
    }

    /// A call to `svc:<name>`: to one instance, or an error at once.
    pub(super) fn service_call(
        &mut self,
        from: String,
        id: String,
        service: String,
        env: Envelope,
        ctx: &mut Context<Self>,
    ) {
        match self.service_table.pick(&service, None) {
            Ok(client) => {
                let retry = wants_retry(&env);
                self.send_to_instance(from, id, service, client, env, retry, Instant::now(), ctx)
            }
            Err(e) => {
                self.rpc.stats.unroutable += 1;
                self.finish(&from, &id, Err(e.to_string()), ctx);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send_to_instance(
        &mut self,
        caller: String,
        id: String,
        service: String,
        client: u64,
        env: Envelope,
        retry: bool,
        started: Instant,
        ctx: &mut Context<Self>,
    ) {
        let feature = format!("client:{client}");
        if id == "skip" {
            // No answer will come to mark it done.
            self.service_table.release(&service, client);
            if let Err(e) = self.deliver(&feature, env, ctx, None) {
                debug!(service = %service, error = %e, "service call (skip) undeliverable");
            }
            return;
        }
        self.rpc.retarget(&caller, &id, &feature);
        let kept = retry.then(|| env.clone());
        self.service_table.track(
            &caller,
            &id,
            ServiceCall {
                service,
                client,
                started,
                retry: kept,
            },
        );
        if let Err(why) = self.deliver(&feature, env, ctx, None) {
            self.rpc.stats.unroutable += 1;
            self.finish(&caller, &id, Err(why), ctx);
        }
    }
}
