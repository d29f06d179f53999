//! [`DriverHost`]: the supervised parent of every [`Driver`]. It keeps their states,
//! starts and stops them, applies reloads (hot, cold, added, removed), and is the
//! router for RPC and the event bus ([`super::route`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use switchyard_codecs::Envelope;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::bus::Bus;
use super::driver::{Driver, Reconfigure};
use super::remote_host::{DriverAddr, Remotes};
use super::rpc::Rpc;
use super::spec::{DriverSpec, HostSettings};
use super::status::{DriverState, DriverStatus, FrameCounts};
use super::*;
use crate::ratelog::RateLog;
use crate::supervisor::{ChildContext, ChildGuard, ChildSpec, Shutdown};
use crate::topic::registry::TopicsSlot;
use crate::tree::{ActorTree, TreeEntry};

/// Where others find the host that runs now (it changes when it restarts).
pub type DriversSlot = Arc<std::sync::Mutex<Option<Addr<DriverHost>>>>;

/// A call held for a starting driver, and the `(caller, rpcID)` it answers.
pub(super) type Waiting = (Envelope, Option<(String, String)>);

#[derive(Debug)]
pub(super) struct Slot {
    pub addr: DriverAddr,
    pub status: DriverStatus,
    /// Its log lines dropped over the rate, counted by its processes' log pumps.
    pub log_dropped: Arc<AtomicU64>,
    /// Its frames in and out, counted by its actor.
    pub counts: Arc<FrameCounts>,
}

impl Slot {
    /// Its status with the counters kept outside it.
    pub(super) fn status(&self) -> DriverStatus {
        let mut s = self.status.clone();
        s.log_lines_dropped = self.log_dropped.load(Ordering::Relaxed);
        self.counts.fill(&mut s);
        s
    }
}

#[derive(Debug)]
pub struct DriverHost {
    pub(super) settings: Arc<HostSettings>,
    pub(super) drivers: BTreeMap<String, Slot>,
    pub(super) clients: rustc_hash::FxHashMap<u64, Recipient<ToClient>>,
    pub(super) rpc: Rpc,
    /// Named services: `svc:<name>` and their instances.
    pub(super) service_table: super::services::ServiceTable,
    pub(super) bus: Bus,
    pub(super) topics: TopicsSlot,
    pub(super) tree: ActorTree,
    pub(super) entry: TreeEntry,
    /// Which connections are remote drivers.
    pub(super) remotes: Remotes,
    guard: ChildGuard,
    ready_waiters: Vec<oneshot::Sender<Result<(), String>>>,
    /// Calls to a driver that is starting, by driver name, until it is alive (or not).
    pub(super) waiting: HashMap<String, Vec<Waiting>>,
    /// The bytes of the calls in `waiting`, by driver name.
    pub(super) waiting_bytes: HashMap<String, usize>,
    watchers: Vec<Recipient<DriverUpdate>>,
    pub(super) chat: Option<Recipient<crate::chat::ChatFrame>>,
    /// Rate limit of the warning for forged rpc returns.
    pub(super) forged_log: RateLog,
    /// Returns for no call in flight (late, or made up): one line a second.
    pub(super) stray_log: RateLog,
}

impl DriverHost {
    /// A supervisor child spec; each start spawns every configured driver.
    pub fn spec(settings: HostSettings, topics: TopicsSlot, slot: DriversSlot) -> ChildSpec {
        ChildSpec::new("drivers", "host", move |cx: ChildContext| {
            let entry = cx.tree.register(Some(cx.parent), "drivers", "host");
            let host = DriverHost {
                bus: Bus::new(&settings.rules),
                settings: Arc::new(settings.clone()),
                drivers: BTreeMap::new(),
                clients: Default::default(),
                rpc: Rpc::default(),
                service_table: Default::default(),
                topics: topics.clone(),
                tree: cx.tree.clone(),
                entry,
                remotes: Remotes::default(),
                guard: cx.guard,
                ready_waiters: Vec::new(),
                waiting: HashMap::new(),
                waiting_bytes: HashMap::new(),
                watchers: Vec::new(),
                chat: None,
                forged_log: RateLog::new(Duration::from_secs(1)),
                stray_log: RateLog::new(Duration::from_secs(1)),
            };
            let addr = host.start();
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr.clone());
            Ok(addr.recipient())
        })
    }

    fn start_driver(&mut self, spec: DriverSpec, ctx: &mut Context<Self>) {
        if spec.remote {
            return self.start_remote(spec, ctx);
        }
        let entry = self.entry.child("driver", spec.name.clone());
        let status = DriverStatus::new(&spec);
        let log_dropped = Arc::new(AtomicU64::new(0));
        let counts = Arc::new(FrameCounts::default());
        let addr = Driver::new(
            spec.clone(),
            self.settings.clone(),
            ctx.address().recipient(),
            ctx.address().recipient(),
            entry,
            log_dropped.clone(),
            counts.clone(),
        )
        .start();
        let slot = Slot {
            addr: DriverAddr::Spawned(addr),
            status,
            log_dropped,
            counts,
        };
        self.drivers.insert(spec.name, slot);
    }

    /// Answers the readiness waiters once every required driver is alive, or one failed.
    fn check_ready(&mut self) {
        if self.ready_waiters.is_empty() {
            return;
        }
        let required = || self.drivers.values().filter(|s| s.status.required);
        let failed = required()
            .find(|s| s.status.state == DriverState::Failed)
            .map(|s| {
                // For the operator at start-up: the command's path too.
                let command = match s.status.remote {
                    true => "remote driver".to_string(),
                    false => self
                        .settings
                        .drivers
                        .iter()
                        .find(|d| d.name == s.status.name)
                        .map(|d| format!("command {}", d.command.display()))
                        .unwrap_or_default(),
                };
                format!(
                    "required driver `{}` failed to start: {} ({command})",
                    s.status.name,
                    s.status.last_error.as_deref().unwrap_or("unknown")
                )
            });
        let answer = match failed {
            Some(why) => Err(why),
            None if required().all(|s| s.status.alive_count > 0) => Ok(()),
            None => return,
        };
        for w in self.ready_waiters.drain(..) {
            let _ = w.send(answer.clone());
        }
    }

    pub(super) fn update_detail(&self) {
        let alive = self
            .drivers
            .values()
            .filter(|s| s.status.state.serving())
            .count();
        self.entry
            .set_detail(format!("{alive}/{} alive", self.drivers.len()));
    }
}

impl Actor for DriverHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16 * 1024);
        for spec in self.settings.drivers.clone() {
            self.start_driver(spec, ctx);
        }
        self.update_detail();
        info!(
            drivers = self.drivers.len(),
            rules = self.settings.rules.len(),
            "driver host started"
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.guard.stopped();
    }
}

impl Drop for DriverHost {
    /// Runs on a panic too: no driver is left running without its host.
    fn drop(&mut self) {
        for s in self.drivers.values() {
            s.addr.stop();
        }
    }
}

impl Handler<DriverUpdate> for DriverHost {
    type Result = ();

    fn handle(&mut self, DriverUpdate(status): DriverUpdate, ctx: &mut Self::Context) {
        let name = status.name.clone();
        let mut lost = false;
        let mut now = status.clone();
        if let Some(slot) = self.drivers.get_mut(&name) {
            // The process (or connection) that had the calls is gone: its calls cannot
            // be answered.
            lost = (slot.status.pid.is_some() && slot.status.pid != status.pid)
                || (slot.status.peer.is_some() && slot.status.peer != status.peer);
            slot.status = status;
            now = slot.status();
        }
        self.watchers
            .retain(|w| w.try_send(DriverUpdate(now.clone())).is_ok() || w.connected());
        if lost {
            self.fail_calls_to(&name, ctx);
        }
        self.release_waiting(&name, ctx);
        self.update_detail();
        self.check_ready();
    }
}

impl Handler<WatchDrivers> for DriverHost {
    type Result = ();

    fn handle(&mut self, WatchDrivers(to): WatchDrivers, _: &mut Self::Context) {
        for s in self.drivers.values() {
            let _ = to.try_send(DriverUpdate(s.status()));
        }
        self.watchers.push(to);
    }
}

impl Handler<RouteChat> for DriverHost {
    type Result = ();

    fn handle(&mut self, RouteChat(to): RouteChat, _: &mut Self::Context) {
        self.chat = Some(to);
    }
}

impl Handler<ListDrivers> for DriverHost {
    type Result = Vec<DriverStatus>;

    fn handle(&mut self, _: ListDrivers, _: &mut Self::Context) -> Self::Result {
        self.drivers.values().map(Slot::status).collect()
    }
}

impl Handler<GetHostStats> for DriverHost {
    type Result = HostStats;

    fn handle(&mut self, _: GetHostStats, _: &mut Self::Context) -> HostStats {
        HostStats {
            rpc: self.rpc.stats.clone(),
            bus: self.bus.stats.clone(),
            rpc_in_flight: self.rpc.in_flight(),
        }
    }
}

impl Handler<WaitReady> for DriverHost {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, _: WaitReady, _: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.ready_waiters.push(tx);
        self.check_ready();
        Box::pin(async move { rx.await.unwrap_or(Err("driver host stopped".into())) })
    }
}

impl Handler<Reload> for DriverHost {
    type Result = MessageResult<Reload>;

    fn handle(&mut self, Reload(new): Reload, ctx: &mut Self::Context) -> Self::Result {
        let mut summary = ReloadSummary::default();
        let new = Arc::new(new);
        self.bus.set_rules(&new.rules);
        let old = std::mem::replace(&mut self.settings, new.clone());
        let wanted: BTreeMap<&str, &DriverSpec> =
            new.drivers.iter().map(|d| (d.name.as_str(), d)).collect();
        let gone: Vec<String> = self
            .drivers
            .keys()
            .filter(|n| !wanted.contains_key(n.as_str()) && !self.undeclared_remote(n, &old))
            .cloned()
            .collect();
        for name in gone {
            if let Some(slot) = self.drivers.remove(&name) {
                info!(driver = %name, "driver removed from config: stopping");
                slot.addr.stop();
                summary.stopped.push(name);
            }
        }
        for (name, spec) in wanted {
            let Some(slot) = self.drivers.get(name) else {
                info!(driver = %name, "driver added to config: starting");
                self.start_driver(spec.clone(), ctx);
                summary.started.push(name.to_string());
                continue;
            };
            if slot.addr.is_remote() != spec.remote {
                // Spawned became remote or the other way: a new actor of the other kind.
                info!(driver = %name, remote = spec.remote, "driver kind changed: replacing it");
                slot.addr.stop();
                self.start_driver(spec.clone(), ctx);
                summary.cold.push(name.to_string());
                continue;
            }
            let before = old.drivers.iter().find(|d| d.name == name);
            let dynamic = new.dynamic_data(name);
            let changed_process = before.is_none_or(|b| !b.same_process(spec));
            let changed_data = before.is_none_or(|b| b.options != spec.options)
                || old.dynamic_data(name) != dynamic;
            let failed = matches!(
                slot.status.state,
                DriverState::Failed | DriverState::Backoff
            );
            if changed_process || failed {
                summary.cold.push(name.to_string());
            } else if changed_data || before != Some(spec) {
                summary.hot.push(name.to_string());
            } else {
                summary.unchanged.push(name.to_string());
                continue;
            }
            slot.addr.reconfigure(Reconfigure {
                spec: spec.clone(),
                dynamic,
            });
        }
        info!(
            started = ?summary.started, stopped = ?summary.stopped, cold = ?summary.cold,
            hot = ?summary.hot, "drivers reloaded"
        );
        self.update_detail();
        MessageResult(summary)
    }
}

impl Handler<Shutdown> for DriverHost {
    type Result = ResponseActFuture<Self, ()>;

    /// `command stop` to every live driver, up to `stop_wait` for `state stopped`,
    /// then stdin closed and the process ended; answered when every process is gone.
    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        for ((caller, id), call) in self.rpc.drain() {
            if let Some(tx) = call.local {
                let _ = tx.send(Err("broker shutting down".into()));
            }
            tracing::debug!(caller = %caller, rpc_id = %id, "call dropped at shutdown");
        }
        let stops: Vec<_> = self.drivers.values().map(|s| s.addr.stop_wait()).collect();
        info!(drivers = stops.len(), "stopping drivers");
        Box::pin(
            async move {
                for s in stops {
                    if let Err(e) = s.await {
                        warn!(error = %e, "driver gone before it stopped");
                    }
                }
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                act.drivers.clear();
                info!("drivers stopped");
                ctx.stop();
            }),
        )
    }
}
