//! The host's side of remote drivers: `driver hello` from a broker-port client (accepted,
//! or refused with `driver error`), the frames of a connection that is a driver (routed
//! as `driver:<name>`), and its connection closing (its crash: calls in flight fail at
//! once). Also [`DriverAddr`], the one handle the host keeps for spawned and remote
//! drivers alike.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use switchyard_codecs::Envelope;
use tracing::{debug, info, warn};

use super::driver::{Driver, Reconfigure, SendError, StopDriver, ToDriver};
use super::host::{DriverHost, Slot};
use super::remote::{Attach, Detach, Link, RemoteDriver, RemoteState, RoleEnded};
use super::spec::{DriverSpec, HostSettings};
use super::status::{DriverState, DriverStatus, FrameCounts};
use super::ToClient;

/// The alive deadline of a remote driver the config does not declare.
const UNDECLARED_START_TIMEOUT: Duration = Duration::from_secs(10);
/// The bytes held for an undeclared remote driver while it starts.
const UNDECLARED_QUEUE_BYTES: usize = 16 << 20;

/// Which connection is which remote driver.
#[derive(Debug, Default)]
pub(super) struct Remotes {
    by_conn: HashMap<u64, String>,
    by_name: HashMap<String, u64>,
}

type Sent = Pin<Box<dyn Future<Output = Result<Result<(), SendError>, MailboxError>>>>;

/// A driver's actor: a process the broker spawned, or a connection that said hello.
#[derive(Debug, Clone)]
pub(super) enum DriverAddr {
    Spawned(Addr<Driver>),
    Remote(Addr<RemoteDriver>),
}

impl DriverAddr {
    pub(super) fn send(&self, m: ToDriver) -> Sent {
        match self {
            DriverAddr::Spawned(a) => Box::pin(a.send(m)),
            DriverAddr::Remote(a) => Box::pin(a.send(m)),
        }
    }

    /// Asks it to stop; not waited for.
    pub(super) fn stop(&self) {
        match self {
            DriverAddr::Spawned(a) => a.do_send(StopDriver),
            DriverAddr::Remote(a) => a.do_send(StopDriver),
        }
    }

    /// Resolves once it has stopped.
    pub(super) fn stop_wait(&self) -> Pin<Box<dyn Future<Output = Result<(), MailboxError>>>> {
        match self {
            DriverAddr::Spawned(a) => Box::pin(a.send(StopDriver)),
            DriverAddr::Remote(a) => Box::pin(a.send(StopDriver)),
        }
    }

    pub(super) fn reconfigure(&self, m: Reconfigure) {
        match self {
            DriverAddr::Spawned(a) => a.do_send(m),
            DriverAddr::Remote(a) => a.do_send(m),
        }
    }

    pub(super) fn is_remote(&self) -> bool {
        matches!(self, DriverAddr::Remote(_))
    }
}

/// Stops a remote driver without a word to anyone (an undeclared one that left).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Forget;

impl Handler<Forget> for RemoteDriver {
    type Result = ();

    fn handle(&mut self, _: Forget, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A name a driver may have: a feature token without `:`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b':')
}

impl DriverHost {
    /// Declared in the config (`remote = true`), so it outlives its connections.
    fn declared(settings: &HostSettings, name: &str) -> bool {
        settings.drivers.iter().any(|d| d.name == name)
    }

    /// An undeclared remote driver is the config's only while it is connected: a
    /// reload does not stop it.
    pub(super) fn undeclared_remote(&self, name: &str, settings: &HostSettings) -> bool {
        self.drivers
            .get(name)
            .is_some_and(|s| s.addr.is_remote() && !Self::declared(settings, name))
    }

    /// The slot of a remote driver, waiting for its hello.
    pub(super) fn start_remote(&mut self, spec: DriverSpec, ctx: &mut Context<Self>) {
        let entry = self.entry.child("driver", spec.name.clone());
        let counts = Arc::new(FrameCounts::default());
        let dynamic = self.settings.dynamic_data(&spec.name);
        let mut status = DriverStatus::new(&spec);
        status.state = DriverState::Disconnected;
        let addr = RemoteDriver::new(
            spec.clone(),
            dynamic,
            ctx.address(),
            self.settings.stop_wait,
            entry,
            counts.clone(),
        )
        .start();
        let slot = Slot {
            addr: DriverAddr::Remote(addr),
            status,
            log_dropped: Arc::new(AtomicU64::new(0)),
            counts,
        };
        self.drivers.insert(spec.name, slot);
    }

    /// What the host does with a client frame when the client is, or wants to be, a
    /// remote driver; `Some` hands the frame back to the client path.
    pub(super) fn remote_frame(
        &mut self,
        id: u64,
        to: &Recipient<ToClient>,
        env: Envelope,
        ctx: &mut Context<Self>,
    ) -> Option<Envelope> {
        if env.is("driver", "hello") {
            if let Err(why) = self.hello(id, to, &env, ctx) {
                let name = env.labels.get_str("name").unwrap_or_default().to_string();
                info!(client = id, driver = %name, reason = %why, "driver hello refused");
                let refusal = Envelope::new("driver", "error")
                    .with_label("name", name)
                    .with_label("error", why);
                let _ = to.try_send(ToClient(refusal));
            }
            return None;
        }
        let Some(name) = self.remotes.by_conn.get(&id).cloned() else {
            if env.channel == "state" || env.channel == "driver" {
                debug!(client = id, channel = %env.channel, subject = %env.subject, "not a driver, frame dropped");
                return None;
            }
            return Some(env);
        };
        let slot = self.drivers.get(&name);
        if let Some(slot) = slot {
            slot.counts.add_in();
        }
        match &*env.channel {
            "state" => {
                if let Some(DriverAddr::Remote(a)) = slot.map(|s| &s.addr) {
                    let state = env.subject.to_string();
                    if let Err(e) = a.try_send(RemoteState { id, state }) {
                        warn!(driver = %name, error = %e, "remote driver busy, state dropped");
                    }
                }
                None
            }
            "driver" => None,
            // Its own event subscription, as any client's.
            "eventbus" if env.subject == "subscribe" || env.subject == "unsubscribe" => Some(env),
            _ => {
                self.route(format!("driver:{name}"), env, ctx);
                None
            }
        }
    }

    /// Makes connection `id` the driver its hello names, or says why not.
    fn hello(
        &mut self,
        id: u64,
        to: &Recipient<ToClient>,
        env: &Envelope,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        let name = env.labels.get_str("name").unwrap_or_default().to_string();
        let service = env.labels.get_str("service").unwrap_or("operator");
        if !valid_name(&name) {
            return Err(format!(
                "label `name`: expected 1 to 128 characters without spaces or `:`, got `{name}`"
            ));
        }
        if !valid_name(service) {
            return Err(format!(
                "label `service`: expected one word, got `{service}`"
            ));
        }
        if let Some(already) = self.remotes.by_conn.get(&id) {
            return Err(format!("this connection is already driver `{already}`"));
        }
        if let Some(other) = self.remotes.by_name.get(&name) {
            let peer = self.drivers.get(&name).and_then(|s| s.status.peer.clone());
            return Err(format!(
                "driver `{name}` is already connected (client:{other}, peer {})",
                peer.as_deref().unwrap_or("-")
            ));
        }
        match self.drivers.get(&name) {
            Some(s) if !s.addr.is_remote() => {
                return Err(format!(
                    "driver `{name}` is configured to be spawned by the broker, not remote"
                ))
            }
            Some(s) if matches!(s.status.state, DriverState::Stopping | DriverState::Stopped) => {
                return Err(format!("driver `{name}` is stopping"))
            }
            Some(_) => {}
            None => self.start_remote(
                DriverSpec {
                    name: name.clone(),
                    command: Default::default(),
                    service: service.to_string(),
                    args: Vec::new(),
                    required: false,
                    start_timeout: UNDECLARED_START_TIMEOUT,
                    options: Value::Object(Default::default()),
                    queue_bytes: UNDECLARED_QUEUE_BYTES,
                    remote: true,
                },
                ctx,
            ),
        }
        let peer = env.labels.get_str("peer").unwrap_or("-").to_string();
        let Some(DriverAddr::Remote(addr)) = self.drivers.get(&name).map(|s| &s.addr) else {
            return Err(format!("driver `{name}` is not remote"));
        };
        let link = Link {
            id,
            to: to.clone(),
            peer,
        };
        let attach = Attach {
            link,
            service: service.to_string(),
        };
        addr.try_send(attach)
            .map_err(|e| format!("driver `{name}` is busy: {e}"))?;
        self.remotes.by_conn.insert(id, name.clone());
        self.remotes.by_name.insert(name, id);
        self.update_detail();
        Ok(())
    }

    /// Connection `id` closed: if it was a driver, that is its crash.
    pub(super) fn remote_gone(&mut self, id: u64, ctx: &mut Context<Self>) {
        let Some(name) = self.remotes.by_conn.remove(&id) else {
            return;
        };
        self.remotes.by_name.remove(&name);
        let Some(slot) = self.drivers.get_mut(&name) else {
            return;
        };
        // Seen at once by calls and rules; the driver's own update follows.
        slot.status.state = DriverState::Disconnected;
        slot.status.peer = None;
        let addr = slot.addr.clone();
        self.fail_calls_to(&name, ctx);
        self.release_waiting(&name, ctx);
        if let DriverAddr::Remote(a) = &addr {
            if Self::declared(&self.settings, &name) {
                let _ = a.try_send(Detach { id });
            } else {
                info!(driver = %name, "undeclared remote driver gone");
                self.drivers.remove(&name);
                let _ = a.try_send(Forget);
            }
        }
        self.update_detail();
    }
}

impl Handler<RoleEnded> for DriverHost {
    type Result = ();

    fn handle(&mut self, RoleEnded { name, id }: RoleEnded, ctx: &mut Self::Context) {
        if self.remotes.by_conn.get(&id) != Some(&name) {
            return;
        }
        self.remotes.by_conn.remove(&id);
        self.remotes.by_name.remove(&name);
        if !Self::declared(&self.settings, &name) {
            // Its slot goes now, so its own update cannot fail these later.
            self.fail_calls_to(&name, ctx);
            if let Some(slot) = self.drivers.remove(&name) {
                if let DriverAddr::Remote(a) = slot.addr {
                    let _ = a.try_send(Forget);
                }
            }
        }
        self.update_detail();
    }
}
