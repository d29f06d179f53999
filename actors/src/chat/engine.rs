//! [`ChatEngine`]: turns `chat ingress` lines into plugin invocations and their
//! replies into `chat egress`. Commands are routed by their first word to the one plugin
//! that owns it; its patterns are matched anchored, in manifest order; the plugin's RPC
//! method of the command's name runs it. Many invocations run at once, each under the
//! `chat.timeout_ms` deadline; a slow one blocks nobody, and each one's replies keep
//! their order.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use serde_json::{json, Value};
use switchyard_codecs::Envelope;
use tracing::{debug, info, warn};

use super::detect::{detect, shell_split};
use super::egress::Outbound;
use super::outbound::Line;
use super::registry::{Manifest, Registry};
use super::*;
use crate::drivers::{
    CallFeature, DriverHost, DriverState, DriverUpdate, DriversSlot, RouteChat, WatchDrivers,
};
use crate::supervisor::{ChildContext, ChildGuard, ChildSpec, Shutdown};
use crate::tree::TreeEntry;

/// Where others find the chat engine that runs now.
pub type ChatSlot = Arc<std::sync::Mutex<Option<Addr<ChatEngine>>>>;

/// Where a line came from, and so where its replies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub adapter: String,
    pub room: String,
    pub thread: Option<String>,
    pub user: String,
    pub nick: String,
    /// Typed at the broker's console: replies go to stdout.
    pub console: bool,
}

#[derive(Debug, Default)]
struct PluginState {
    state: Option<DriverState>,
    alive_seen: u64,
    error: Option<String>,
}

#[derive(Debug)]
pub struct ChatEngine {
    pub(super) settings: Arc<ChatSettings>,
    drivers: DriversSlot,
    registry: Registry,
    plugins: HashMap<String, PluginState>,
    pub(super) out: HashMap<String, Outbound<Line>>,
    /// TCP adapters: adapter name to `client:<id>`.
    pub(super) tcp: HashMap<String, String>,
    pub(super) stats: ChatStats,
    /// The driver host this engine registered with (it changes if the host restarts).
    registered: Option<Addr<DriverHost>>,
    entry: TreeEntry,
    guard: ChildGuard,
}

impl ChatEngine {
    /// A supervisor child spec; it starts after the driver host and registers with it.
    pub fn spec(settings: ChatSettings, drivers: DriversSlot, slot: ChatSlot) -> ChildSpec {
        ChildSpec::new("chat", "engine", move |cx: ChildContext| {
            let entry = cx.tree.register(Some(cx.parent), "chat", "engine");
            let order = settings.plugins.iter().map(|p| p.name.clone()).collect();
            let addr = ChatEngine {
                settings: Arc::new(settings.clone()),
                drivers: drivers.clone(),
                registry: Registry::new(order),
                plugins: HashMap::new(),
                out: HashMap::new(),
                tcp: HashMap::new(),
                stats: ChatStats::default(),
                registered: None,
                entry,
                guard: cx.guard,
            }
            .start();
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr.clone());
            Ok(addr.recipient())
        })
    }

    pub(super) fn host(&self) -> Option<Addr<DriverHost>> {
        self.drivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn register(&mut self, ctx: &mut Context<Self>) {
        let host = self.host();
        if host.is_none() || host == self.registered {
            return;
        }
        if let Some(h) = &host {
            h.do_send(RouteChat(ctx.address().recipient()));
            h.do_send(WatchDrivers(ctx.address().recipient()));
        }
        self.registered = host;
    }

    fn plugin_of_driver(&self, driver: &str) -> Option<&PluginSpec> {
        self.settings.plugins.iter().find(|p| p.driver == driver)
    }

    fn update_detail(&self) {
        let n = self.registry.all().count();
        self.entry.set_detail(format!(
            "{n} commands, {} plugins",
            self.settings.plugins.len()
        ));
    }

    fn fetch_manifest(&mut self, plugin: PluginSpec, ctx: &mut Context<Self>) {
        let Some(host) = self.host() else { return };
        let call = host.send(CallFeature {
            feature: format!("driver:{}", plugin.driver),
            method: "manifest".into(),
            payload: Bytes::new(),
            timeout: Some(self.settings.timeout),
        });
        ctx.spawn(call.into_actor(self).map(move |r, act, _| {
            let r = r.map_err(|e| e.to_string()).and_then(|r| r);
            let parsed = r.and_then(|b| {
                serde_json::from_slice::<Manifest>(&b).map_err(|e| format!("manifest is not valid: {e}"))
            });
            let state = act.plugins.entry(plugin.name.clone()).or_default();
            match parsed.and_then(|m| act.registry.register(&plugin.name, &m)) {
                Ok(reg) => {
                    state.error = None;
                    info!(plugin = %plugin.name, commands = ?reg.owned, "plugin manifest registered");
                    for (name, why) in reg.refused {
                        if why.starts_with("taken") {
                            info!(plugin = %plugin.name, command = %name, reason = %why, "command conflict: taken over");
                        } else {
                            warn!(plugin = %plugin.name, command = %name, reason = %why, "command conflict: refused");
                        }
                    }
                }
                Err(e) => {
                    act.registry.remove(&plugin.name);
                    warn!(plugin = %plugin.name, error = %e, "plugin skipped: bad manifest");
                    state.error = Some(e);
                }
            }
            act.update_detail();
        }));
    }

    /// An ingress line: a command, or nothing.
    pub(super) fn ingress(&mut self, origin: Origin, text: &str, ctx: &mut Context<Self>) {
        self.stats.ingress += 1;
        if origin.nick.eq_ignore_ascii_case(&self.settings.name) {
            return; // the bot's own line
        }
        let prefix = self
            .settings
            .adapter(&origin.adapter)
            .and_then(|a| a.prefix.clone())
            .unwrap_or_else(|| self.settings.prefix.clone());
        let Some(cmd) = detect(text, &prefix, &self.settings.name) else {
            return;
        };
        self.stats.commands += 1;
        debug!(adapter = %origin.adapter, room = %origin.room, nick = %origin.nick, command = %cmd.command, "chat command");
        if cmd.command == "help" {
            return self.help(origin, cmd.rest, prefix, ctx);
        }
        let Some(command) = self.registry.get(&cmd.command).cloned() else {
            self.stats.unknown += 1;
            if self.settings.unknown_reply {
                let text = format!("unknown command {prefix}{}; try {prefix}help", cmd.command);
                self.reply(&origin, vec![text], ctx);
            }
            return;
        };
        let Some(args) = command.matches(&cmd.rest) else {
            self.stats.usage_replies += 1;
            let usage = if command.decl.usage.is_empty() {
                format!("{prefix}{}", command.decl.name)
            } else {
                command.decl.usage.clone()
            };
            return self.reply(&origin, vec![format!("usage: {usage}")], ctx);
        };
        let payload = json!({
            "command": cmd.command, "text": cmd.rest, "args": args, "argv": shell_split(&cmd.rest),
            "adapter": origin.adapter, "room": origin.room, "user": origin.user, "nick": origin.nick,
        });
        if command.decl.admin {
            let name = cmd.command.clone();
            let fut = self.trusted(&origin);
            ctx.spawn(fut.into_actor(self).map(move |ok, act, ctx| {
                if ok {
                    act.invoke(command.plugin.clone(), name, origin, payload, ctx);
                } else {
                    act.stats.refused += 1;
                    info!(adapter = %origin.adapter, user = %origin.user, command = %name, "admin command refused");
                    let text = format!("{}: you are not allowed to run {name} (admins only)", origin.nick);
                    act.reply(&origin, vec![text], ctx);
                }
            }));
        } else {
            self.invoke(command.plugin.clone(), cmd.command, origin, payload, ctx);
        }
    }

    fn invoke(
        &mut self,
        plugin: String,
        command: String,
        origin: Origin,
        payload: Value,
        ctx: &mut Context<Self>,
    ) {
        self.stats.invocations += 1;
        let Some(spec) = self
            .settings
            .plugins
            .iter()
            .find(|p| p.name == plugin)
            .cloned()
        else {
            return;
        };
        let Some(host) = self.host() else { return };
        let timeout = self.settings.timeout;
        let call = host.send(CallFeature {
            feature: format!("driver:{}", spec.driver),
            method: command.clone(),
            payload: Bytes::from(payload.to_string()),
            timeout: Some(timeout),
        });
        ctx.spawn(call.into_actor(self).map(move |r, act, ctx| {
            let replies = match r.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok(body) => match parse_replies(&body) {
                    Ok(r) => r,
                    Err(e) => {
                        act.stats.plugin_errors += 1;
                        vec![format!("{command}: plugin {plugin} answered badly: {e}")]
                    }
                },
                Err(e) if e == "timeout" => {
                    act.stats.timeouts += 1;
                    let s = timeout.as_secs_f64();
                    vec![format!("{command}: plugin {plugin} timed out after {s} s")]
                }
                Err(e)
                    if e.contains("not alive")
                        || e.contains("not running")
                        || e.contains("restarted") =>
                {
                    act.stats.plugin_errors += 1;
                    vec![format!(
                        "{command}: plugin {plugin} is restarting, try again shortly"
                    )]
                }
                Err(e) => {
                    act.stats.plugin_errors += 1;
                    vec![format!("{command}: plugin {plugin} failed: {e}")]
                }
            };
            act.reply(&origin, replies, ctx);
        }));
    }

    /// Does the originating adapter trust this user? The console trusts its operator;
    /// other adapters answer the RPC `is_trusted` with the admin masks for them.
    fn trusted(
        &self,
        origin: &Origin,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool>>> {
        if origin.console
            || self.settings.adapter(&origin.adapter).map(|a| &a.kind)
                == Some(&AdapterKind::Console)
        {
            return Box::pin(async { true });
        }
        let feature = match self.settings.adapter(&origin.adapter).map(|a| &a.kind) {
            Some(AdapterKind::Driver(d)) => format!("driver:{d}"),
            Some(AdapterKind::Tcp) => match self.tcp.get(&origin.adapter) {
                Some(f) => f.clone(),
                None => return Box::pin(async { false }),
            },
            _ => return Box::pin(async { false }),
        };
        let Some(host) = self.host() else {
            return Box::pin(async { false });
        };
        let params = json!({
            "user": origin.user, "nick": origin.nick, "room": origin.room,
            "admins": self.settings.admin_masks(&origin.adapter),
        });
        let call = host.send(CallFeature {
            feature,
            method: "is_trusted".into(),
            payload: Bytes::from(params.to_string()),
            timeout: Some(self.settings.timeout),
        });
        let who = origin.user.clone();
        Box::pin(async move {
            match call.await.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok(b) => serde_json::from_slice::<Value>(&b).ok() == Some(Value::Bool(true)),
                Err(e) => {
                    warn!(user = %who, error = %e, "is_trusted failed: not trusted");
                    false
                }
            }
        })
    }

    /// `help`: the commands the caller may run; `help <command>`: its usage and help.
    fn help(&mut self, origin: Origin, rest: String, prefix: String, ctx: &mut Context<Self>) {
        let fut = self.trusted(&origin);
        ctx.spawn(fut.into_actor(self).map(move |trusted, act, ctx| {
            let wanted = rest
                .trim()
                .trim_start_matches(prefix.as_str())
                .to_lowercase();
            let visible = |c: &&registry::Command| trusted || !c.decl.admin;
            let lines = if wanted.is_empty() {
                let names: Vec<String> = act
                    .registry
                    .all()
                    .filter(visible)
                    .map(|c| format!("{prefix}{}", c.decl.name))
                    .collect();
                vec![format!("commands: {prefix}help, {}", names.join(", "))]
            } else {
                match act.registry.get(&wanted).filter(|c| visible(c)) {
                    Some(c) => {
                        let usage = if c.decl.usage.is_empty() {
                            format!("{prefix}{}", c.decl.name)
                        } else {
                            c.decl.usage.clone()
                        };
                        let mut v = vec![format!("usage: {usage}")];
                        v.extend(c.decl.help.lines().map(str::to_string));
                        v
                    }
                    None => vec![format!("no command {prefix}{wanted}; try {prefix}help")],
                }
            };
            act.reply(&origin, lines, ctx);
        }));
    }
}

/// A plugin's answer: `{"replies": [..]}` (a bare JSON string is one reply).
fn parse_replies(body: &[u8]) -> Result<Vec<String>, String> {
    match serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())? {
        Value::Object(m) => match m.get("replies") {
            Some(Value::Array(a)) => Ok(a
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()),
            Some(Value::Null) | None => Ok(Vec::new()),
            Some(_) => Err("`replies` is not a list".into()),
        },
        Value::String(s) => Ok(vec![s]),
        _ => Err("expected {\"replies\": [...]}".into()),
    }
}

impl Actor for ChatEngine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16 * 1024);
        self.register(ctx);
        if self.registered.is_none() {
            warn!("no driver host: chat adapters and plugins cannot be reached");
        }
        // A restarted driver host has forgotten us: register again.
        ctx.run_interval(std::time::Duration::from_secs(1), |act, ctx| {
            act.register(ctx)
        });
        if self.settings.console {
            super::outbound::read_console(ctx);
        }
        self.update_detail();
        info!(
            adapters = self.settings.adapters.len(),
            plugins = self.settings.plugins.len(),
            "chat engine started"
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.guard.stopped();
    }
}

impl Handler<DriverUpdate> for ChatEngine {
    type Result = ();

    fn handle(&mut self, DriverUpdate(s): DriverUpdate, ctx: &mut Self::Context) {
        let Some(plugin) = self.plugin_of_driver(&s.name).cloned() else {
            return;
        };
        let state = self.plugins.entry(plugin.name.clone()).or_default();
        state.state = Some(s.state);
        if s.state == DriverState::Alive && s.alive_count > state.alive_seen {
            state.alive_seen = s.alive_count;
            self.fetch_manifest(plugin, ctx);
        }
    }
}

impl Handler<ChatFrame> for ChatEngine {
    type Result = ();

    fn handle(&mut self, ChatFrame { from, env }: ChatFrame, ctx: &mut Self::Context) {
        let label = |n: &str| env.labels.get_str(n).map(str::to_string);
        let adapter = label("adapter").or_else(|| {
            let d = from.strip_prefix("driver:")?;
            self.settings
                .adapters
                .iter()
                .find(|a| a.kind == AdapterKind::Driver(d.to_string()))
                .map(|a| a.name.clone())
        });
        let Some(adapter) = adapter.filter(|a| self.settings.adapter(a).is_some()) else {
            warn!(from = %from, adapter = label("adapter"), "chat frame from an unknown adapter, dropped");
            return;
        };
        if from.starts_with("client:") {
            self.tcp.insert(adapter.clone(), from.clone());
        }
        match &*env.subject {
            "register" => {
                let ok = Envelope::new("chat", "registered").with_label("adapter", adapter);
                self.send_to(&from, ok);
            }
            "ingress" => {
                let origin = Origin {
                    adapter,
                    room: label("room").unwrap_or_default(),
                    thread: label("thread"),
                    user: label("user").unwrap_or_default(),
                    nick: label("nick").unwrap_or_default(),
                    console: false,
                };
                let text = String::from_utf8_lossy(&env.payload).into_owned();
                self.ingress(origin, &text, ctx);
            }
            other => debug!(from = %from, subject = other, "chat frame ignored"),
        }
    }
}

impl Handler<GetChatStats> for ChatEngine {
    type Result = ChatStats;

    fn handle(&mut self, _: GetChatStats, _: &mut Self::Context) -> ChatStats {
        let mut s = self.stats.clone();
        s.lines_dropped = self.out.values().map(|o| o.dropped).sum();
        s
    }
}

impl Handler<ListCommands> for ChatEngine {
    type Result = Vec<(String, String)>;

    fn handle(&mut self, _: ListCommands, _: &mut Self::Context) -> Self::Result {
        self.registry
            .all()
            .map(|c| (c.decl.name.to_lowercase(), c.plugin.clone()))
            .collect()
    }
}

impl Handler<Shutdown> for ChatEngine {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
