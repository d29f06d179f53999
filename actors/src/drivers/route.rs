//! How [`DriverHost`] routes frames. RPC: a call goes to the feature in its `feature`
//! label with `caller` overwritten by the calling feature, and its return goes back by
//! `caller`, taken only from the feature the call went to (others are counted as forged
//! and dropped); a call nobody can take is answered at once with an `error`; the caller's
//! deadline answers `error=timeout` and a later return is dropped. Features:
//! `driver:<name>`, `client:<connection id>`, `svc:<name>` (one instance of a named
//! service, [`super::service_route`]), `broker` (the broker's own methods) and
//! `-` (calls the broker made). Events: rules, client subscribers, the eventbus topic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use switchyard_codecs::Envelope;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::broker_feature::Answer;
use super::driver::ToDriver;
use super::host::DriverHost;
use super::rpc::{parse_go_duration, LocalReply, Refused};
use super::*;
use crate::storage::log::Append;
use crate::topic::registry::Publish;

/// The caller feature of calls the broker itself makes.
const LOCAL: &str = "-";
/// The feature that answers for the broker.
const BROKER: &str = "broker";

impl DriverHost {
    pub(super) fn route(&mut self, from: String, env: Envelope, ctx: &mut Context<Self>) {
        match (&*env.channel, &*env.subject) {
            ("rpc", "call") => self.rpc_call(from, env, None, ctx),
            ("rpc", "return") => self.rpc_return(&from, env, ctx),
            ("rpc", "register" | "unregister") => self.service_frame(&from, env, ctx),
            ("eventbus", "message") => self.event(&from, env, ctx),
            ("eventbus", "return") => {
                let source = from.strip_prefix("driver:").unwrap_or(&from);
                self.bus.on_return(source, &env)
            }
            ("chat", _) => match &self.chat {
                Some(chat) => {
                    if let Err(e) = chat.try_send(crate::chat::ChatFrame { from, env }) {
                        warn!(error = %e, "chat engine busy, chat frame dropped");
                    }
                }
                None => debug!(from = %from, "chat is off, chat frame dropped"),
            },
            (c, s) => debug!(from = %from, channel = c, subject = s, "no route, frame dropped"),
        }
    }

    fn rpc_call(
        &mut self,
        from: String,
        mut env: Envelope,
        local: Option<LocalReply>,
        ctx: &mut Context<Self>,
    ) {
        let Some(id) = env.labels.get_str("rpcID").map(str::to_string) else {
            warn!(from = %from, "rpc call without rpcID dropped");
            return;
        };
        let target = env.labels.get_str("feature").unwrap_or("").to_string();
        let method = env.labels.get_str("method").unwrap_or("").to_string();
        env.labels.insert("caller", from.clone());
        if id != "skip" {
            let timeout = env
                .labels
                .get_str("timeout")
                .and_then(parse_go_duration)
                .unwrap_or(self.settings.rpc_timeout);
            self.rpc.open(&from, &id, &target, &method, local, timeout);
            self.arm_deadline(ctx);
        }
        debug!(from = %from, to = %target, method = %method, rpc_id = %id, "rpc call");
        if target.starts_with("svc:") {
            return self.service_call(from, id, target, env, ctx);
        }
        if target == BROKER {
            match self.broker_method(&method, &env.payload) {
                Answer::Now(result) => self.finish(&from, &id, result, ctx),
                Answer::Later(answer) => {
                    ctx.spawn(answer.into_actor(self).map(move |result, act, ctx| {
                        act.finish(&from, &id, result, ctx);
                    }));
                }
            }
            return;
        }
        if let Err(why) = self.deliver(&target, env, ctx, Some((from.clone(), id.clone()))) {
            self.rpc.stats.unroutable += 1;
            self.finish(&from, &id, Err(why), ctx);
        }
    }

    /// Answers a call the broker resolved itself (or could not route).
    pub(super) fn finish(
        &mut self,
        caller: &str,
        id: &str,
        result: Result<Bytes, String>,
        ctx: &mut Context<Self>,
    ) {
        if id == "skip" {
            return;
        }
        if let Some(call) = self.rpc.close(caller, id) {
            self.answer(caller, id, call.local, result, ctx);
        }
    }

    /// Sends a return to `caller`, or completes the broker's own call.
    pub(super) fn answer(
        &mut self,
        caller: &str,
        id: &str,
        local: Option<LocalReply>,
        result: Result<Bytes, String>,
        ctx: &mut Context<Self>,
    ) {
        if result.is_err() {
            self.rpc.stats.errors += 1;
        }
        self.service_table.done(caller, id, result.is_ok());
        if let Some(tx) = local {
            let _ = tx.send(result);
            return;
        }
        let mut ret = Envelope::new("rpc", "return")
            .with_label("rpcID", id.to_string())
            .with_label("caller", caller.to_string());
        match result {
            Ok(p) => ret = ret.with_payload(p),
            Err(e) => ret = ret.with_label("error", e),
        }
        if let Err(e) = self.deliver(caller, ret, ctx, None) {
            debug!(caller, error = %e, "rpc return undeliverable");
        }
    }

    fn rpc_return(&mut self, from: &str, env: Envelope, ctx: &mut Context<Self>) {
        let caller = env.labels.get_str("caller").unwrap_or("").to_string();
        let id = env.labels.get_str("rpcID").unwrap_or("").to_string();
        let call = match self.rpc.close_from(&caller, &id, from) {
            Ok(call) => call,
            Err(Refused::NoCall) => {
                // Any client can send these too: one line a second with a count.
                if let Some(suppressed) = self.stray_log.allow() {
                    warn!(caller = %caller, rpc_id = %id, from = %from, suppressed, "rpc return for no pending call (late or unknown), dropped");
                }
                return;
            }
            Err(Refused::Forged { target }) => {
                // Anyone may write these labels; one line a second however many come.
                if let Some(suppressed) = self.forged_log.allow() {
                    warn!(caller = %caller, rpc_id = %id, from = %from, expected = %target, suppressed, "rpc return from a feature the call was not routed to, dropped");
                }
                return;
            }
        };
        self.service_table
            .done(&caller, &id, env.labels.get("error").is_none());
        if let Some(e) = env.labels.get_str("error") {
            self.rpc.stats.errors += 1;
            debug!(caller = %caller, rpc_id = %id, error = e, "rpc returned an error");
        }
        match call.local {
            Some(tx) => {
                let result = match env.labels.get_str("error") {
                    Some(e) => Err(e.to_string()),
                    None => Ok(env.payload),
                };
                let _ = tx.send(result);
            }
            None => {
                if let Err(e) = self.deliver(&caller, env, ctx, None) {
                    debug!(caller = %caller, error = %e, "rpc return undeliverable");
                }
            }
        }
    }

    /// Hands `env` to a feature. A driver's queue answers asynchronously: if it refuses,
    /// the call in `pending` (if any) is failed then.
    pub(super) fn deliver(
        &mut self,
        feature: &str,
        env: Envelope,
        ctx: &mut Context<Self>,
        pending: Option<(String, String)>,
    ) -> Result<(), String> {
        if let Some(name) = feature.strip_prefix("driver:") {
            let slot = self
                .drivers
                .get(name)
                .ok_or_else(|| format!("feature {feature} is not loaded"))?;
            if !slot.status.state.serving() && pending.is_some() {
                if slot.status.state != DriverState::Starting {
                    return Err(format!(
                        "feature {feature} is not alive ({})",
                        slot.status.state.as_str()
                    ));
                }
                // Starting: the call waits for `alive` (or fails with the start), within
                // its own deadline, as drivers decrypt their options through others at boot.
                let max_bytes = self
                    .settings
                    .drivers
                    .iter()
                    .find(|d| d.name == name)
                    .map_or(usize::MAX, |d| d.queue_bytes);
                let len = env.encoded_len();
                let bytes = self.waiting_bytes.entry(name.to_string()).or_default();
                let queue = self.waiting.entry(name.to_string()).or_default();
                if queue.len() >= self.settings.queue_frames
                    || (*bytes > 0 && *bytes + len > max_bytes)
                {
                    return Err(format!(
                        "feature {feature} is starting and its queue is full"
                    ));
                }
                *bytes += len;
                queue.push((env, pending));
                return Ok(());
            }
            let fut = slot.addr.send(ToDriver(env));
            ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
                let why = match r {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                if let Some((caller, id)) = pending {
                    act.rpc.stats.unroutable += 1;
                    act.finish(&caller, &id, Err(why), ctx);
                }
            }));
            return Ok(());
        }
        if let Some(id) = feature.strip_prefix("client:") {
            let to = id
                .parse::<u64>()
                .ok()
                .and_then(|id| self.clients.get(&id))
                .ok_or_else(|| format!("feature {feature} is not connected"))?;
            return to
                .try_send(ToClient(env))
                .map_err(|e| format!("feature {feature}: {e}"));
        }
        if feature == LOCAL {
            return Err("no local caller".into());
        }
        Err(format!("feature {feature} is not loaded"))
    }

    /// Answers the calls in flight to a driver whose process went away.
    pub(super) fn fail_calls_to(&mut self, name: &str, ctx: &mut Context<Self>) {
        let keep: Vec<(String, String)> = self
            .waiting
            .get(name)
            .map(|w| w.iter().filter_map(|(_, p)| p.clone()).collect())
            .unwrap_or_default();
        let why = match self.drivers.get(name).is_some_and(|s| s.status.remote) {
            true => format!("driver {name} disconnected before it answered"),
            false => format!("driver {name} restarted before it answered"),
        };
        for ((caller, id), call) in self.rpc.take_for_target(&format!("driver:{name}"), &keep) {
            warn!(caller = %caller, rpc_id = %id, method = %call.method, driver = name, "rpc call lost with its driver process");
            self.answer(&caller, &id, call.local, Err(why.clone()), ctx);
        }
    }

    /// A driver's state changed: calls waiting for it go on, or fail.
    pub(super) fn release_waiting(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(state) = self.drivers.get(name).map(|s| s.status.state) else {
            return;
        };
        if state == DriverState::Starting {
            return;
        }
        let feature = format!("driver:{name}");
        self.waiting_bytes.remove(name);
        for (env, pending) in self.waiting.remove(name).unwrap_or_default() {
            let Some((caller, id)) = pending else {
                continue;
            };
            // Skip calls whose deadline has already answered them.
            if !self.rpc.is_pending(&caller, &id) {
                continue;
            }
            if let Err(why) = self.deliver(&feature, env, ctx, Some((caller.clone(), id.clone()))) {
                self.rpc.stats.unroutable += 1;
                self.finish(&caller, &id, Err(why), ctx);
            }
        }
    }

    fn event(&mut self, source: &str, env: Envelope, ctx: &mut Context<Self>) {
        let source = source.strip_prefix("driver:").unwrap_or(source).to_string();
        for cmd in self.bus.on_message(&source, &env) {
            self.bus.stats.commands_sent += 1;
            let feature = format!("driver:{}", cmd.driver);
            if let Err(e) = self.deliver_command(&feature, cmd.env, ctx) {
                self.bus.stats.command_errors += 1;
                warn!(rule = %cmd.rule, driver = %cmd.driver, error = %e, "rule command not delivered");
            }
        }
        let mut out = env.clone();
        out.labels.insert("driver", source.clone());
        for id in self.bus.subscribers.clone() {
            match self.clients.get(&id) {
                Some(to) if to.try_send(ToClient(out.clone())).is_ok() => {
                    self.bus.stats.delivered_to_clients += 1;
                }
                _ => debug!(client = id, "event not delivered to subscriber"),
            }
        }
        self.append_to_topic(&source, out);
    }

    fn deliver_command(
        &mut self,
        feature: &str,
        env: Envelope,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        let name = feature.trim_start_matches("driver:");
        match self.drivers.get(name) {
            Some(s) if s.status.state.serving() => self.deliver(feature, env, ctx, None),
            Some(s) => Err(format!("driver {name} is {}", s.status.state.as_str())),
            None => Err(format!("driver {name} is not loaded")),
        }
    }

    fn append_to_topic(&self, source: &str, env: Envelope) {
        let Some(topic) = self.settings.eventbus_topic.clone() else {
            return;
        };
        let Some(reg) = self
            .topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return;
        };
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let publish = Publish {
            topic,
            key: Some(Bytes::from(source.to_string())),
            partition: None,
            records: vec![Append {
                timestamp_ms,
                key: Some(Bytes::from(source.to_string())),
                labels: env.labels,
                value: env.payload,
            }],
        };
        actix::spawn(async move {
            match reg.send(publish).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(error = %e, "event not appended to the eventbus topic"),
                Err(e) => warn!(error = %e, "topic registry gone, event not appended"),
            }
        });
    }
}

impl Handler<FromDriver> for DriverHost {
    type Result = ();

    fn handle(&mut self, FromDriver { name, env }: FromDriver, ctx: &mut Self::Context) {
        if !self.drivers.contains_key(&name) {
            return;
        }
        self.route(format!("driver:{name}"), env, ctx);
    }
}

impl Handler<FromClient> for DriverHost {
    type Result = ();

    fn handle(&mut self, FromClient { id, to, env }: FromClient, ctx: &mut Self::Context) {
        self.clients.entry(id).or_insert_with(|| to.clone());
        let Some(env) = self.remote_frame(id, &to, env, ctx) else {
            return;
        };
        match (&*env.channel, &*env.subject) {
            ("eventbus", "subscribe") => {
                self.bus.subscribers.insert(id);
                let _ = to.try_send(ToClient(Envelope::new("eventbus", "subscribed")));
            }
            ("eventbus", "unsubscribe") => {
                self.bus.subscribers.remove(&id);
                let _ = to.try_send(ToClient(Envelope::new("eventbus", "unsubscribed")));
            }
            _ => self.route(format!("client:{id}"), env, ctx),
        }
    }
}

impl Handler<SendTo> for DriverHost {
    type Result = Result<(), String>;

    fn handle(&mut self, SendTo { feature, env }: SendTo, ctx: &mut Self::Context) -> Self::Result {
        self.deliver(&feature, env, ctx, None)
    }
}

impl Handler<ClientGone> for DriverHost {
    type Result = ();

    fn handle(&mut self, ClientGone(id): ClientGone, ctx: &mut Self::Context) {
        self.remote_gone(id, ctx);
        self.clients.remove(&id);
        self.bus.subscribers.remove(&id);
        self.client_left(id, ctx);
    }
}

impl Handler<CallFeature> for DriverHost {
    type Result = ResponseFuture<Result<Bytes, String>>;

    fn handle(&mut self, msg: CallFeature, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let id = self.rpc.local_id();
        let mut env = Envelope::new("rpc", "call")
            .with_label("rpcID", id)
            .with_label("feature", msg.feature)
            .with_label("method", msg.method)
            .with_payload(msg.payload);
        if let Some(t) = msg.timeout {
            env.labels.insert("timeout", go_duration(t));
        }
        self.rpc_call(LOCAL.to_string(), env, Some(tx), ctx);
        Box::pin(async move { rx.await.unwrap_or(Err("driver host stopped".into())) })
    }
}

/// A duration as Go writes the `timeout` label, in milliseconds.
fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}
