//! [`RemoteDriver`]: a driver that is not a child process but a client of the broker
//! port that said `driver hello`. Its "process" is that connection: the lifecycle
//! (options, start, the alive deadline, stop) is the spawned driver's, spoken over TCP,
//! and the connection closing is its crash. One actor per remote driver name, for as
//! long as the config declares it (`remote = true`) or, undeclared, while it is
//! connected.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use serde_json::Value;
use switchyard_codecs::Envelope;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::driver::{Reconfigure, SendError, StopDriver, ToDriver};
use super::host::DriverHost;
use super::spec::DriverSpec;
use super::status::{DriverState, DriverStatus, FrameCounts};
use super::{DriverUpdate, ToClient};
use crate::tree::TreeEntry;

/// The connection a remote driver speaks over.
#[derive(Debug, Clone)]
pub struct Link {
    /// The connection's id (its client feature is `client:<id>`).
    pub id: u64,
    pub to: Recipient<ToClient>,
    pub peer: String,
}

/// A connection said `driver hello` for this driver and the host accepted it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Attach {
    pub link: Link,
    pub service: String,
}

/// The connection `id` closed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub id: u64,
}

/// A `state` frame from connection `id`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteState {
    pub id: u64,
    pub state: String,
}

/// Told to the host: connection `id` is no longer driver `name` (it stays a client).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RoleEnded {
    pub name: String,
    pub id: u64,
}

#[derive(Debug)]
pub struct RemoteDriver {
    spec: DriverSpec,
    dynamic: Value,
    host: Addr<DriverHost>,
    status: DriverStatus,
    link: Option<Link>,
    /// Counts hellos, so a deadline armed for one connection ignores the next.
    gen: u64,
    stop_wait: Duration,
    stop_waiters: Vec<oneshot::Sender<()>>,
    entry: TreeEntry,
    counts: Arc<FrameCounts>,
}

impl RemoteDriver {
    pub fn new(
        spec: DriverSpec,
        dynamic: Value,
        host: Addr<DriverHost>,
        stop_wait: Duration,
        entry: TreeEntry,
        counts: Arc<FrameCounts>,
    ) -> Self {
        let mut status = DriverStatus::new(&spec);
        status.state = DriverState::Disconnected;
        RemoteDriver {
            spec,
            dynamic,
            host,
            status,
            link: None,
            gen: 0,
            stop_wait,
            stop_waiters: Vec::new(),
            entry,
            counts,
        }
    }

    fn set_state(&mut self, state: DriverState) {
        self.status.state = state;
        self.status.peer = self.link.as_ref().map(|l| l.peer.clone());
        self.entry.set_detail(format!(
            "{} remote {} restarts {}",
            state.as_str(),
            self.status.peer.as_deref().unwrap_or("-"),
            self.status.restarts
        ));
        if let Err(e) = self.host.try_send(DriverUpdate(self.status.clone())) {
            warn!(driver = %self.spec.name, error = %e, "driver host busy, state change not told");
        }
    }

    fn write(&mut self, env: Envelope) -> Result<(), SendError> {
        let link = self.link.as_ref().ok_or(SendError::NotRunning)?;
        link.to.try_send(ToClient(env)).map_err(|e| match e {
            actix::prelude::SendError::Full(_) => SendError::Busy,
            actix::prelude::SendError::Closed(_) => SendError::NotRunning,
        })?;
        self.counts.add_out();
        Ok(())
    }

    fn send_options_and_start(&mut self, ctx: &mut Context<Self>) {
        let payload = serde_json::json!({ "data": self.spec.options, "dynamicData": self.dynamic });
        let options = Envelope::new("command", "options").with_payload(Bytes::from(
            serde_json::to_vec(&payload).unwrap_or_default(),
        ));
        let gen = self.gen;
        ctx.run_later(self.spec.start_timeout, move |act, _| {
            if act.gen == gen
                && act.link.is_some()
                && matches!(
                    act.status.state,
                    DriverState::Starting | DriverState::Reloading
                )
            {
                let ms = act.spec.start_timeout.as_millis();
                act.end_role(format!("no `state alive` within {ms} ms"));
            }
        });
        let sent = self
            .write(options)
            .and_then(|()| self.write(Envelope::new("command", "start")));
        if let Err(e) = sent {
            debug!(driver = %self.spec.name, error = %e, "options not sent");
        }
    }

    /// The broker ends the connection's role (it stays a client): the peer is told
    /// with `driver error`, the host forgets the link.
    fn end_role(&mut self, why: String) {
        let Some(link) = self.link.take() else { return };
        warn!(driver = %self.spec.name, peer = %link.peer, reason = %why, "remote driver detached");
        let bye = Envelope::new("driver", "error")
            .with_label("name", self.spec.name.clone())
            .with_label("error", why.clone());
        let _ = link.to.try_send(ToClient(bye));
        let _ = self.host.try_send(RoleEnded {
            name: self.spec.name.clone(),
            id: link.id,
        });
        self.lost(why);
    }

    /// The link is gone: a failure the first time a required driver never came up,
    /// else disconnected until the next hello.
    fn lost(&mut self, why: String) {
        self.status.last_error = Some(why);
        if self.status.state == DriverState::Stopping {
            return self.finish_stop();
        }
        let failed = self.spec.required && self.status.alive_count == 0;
        self.set_state(if failed {
            DriverState::Failed
        } else {
            DriverState::Disconnected
        });
    }

    fn finish_stop(&mut self) {
        self.link = None;
        self.set_state(DriverState::Stopped);
        for w in self.stop_waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

impl Actor for RemoteDriver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.set_state(DriverState::Disconnected);
        if self.spec.required {
            // Start-up waits for a required driver: one that never says hello fails it.
            ctx.run_later(self.spec.start_timeout, |act, _| {
                if act.link.is_none() && act.status.alive_count == 0 {
                    let ms = act.spec.start_timeout.as_millis();
                    act.status.last_error = Some(format!("no `driver hello` within {ms} ms"));
                    act.set_state(DriverState::Failed);
                }
            });
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        info!(driver = %self.spec.name, "remote driver stopped");
    }
}

impl Handler<Attach> for RemoteDriver {
    type Result = ();

    fn handle(&mut self, Attach { link, service }: Attach, ctx: &mut Self::Context) {
        if matches!(
            self.status.state,
            DriverState::Stopping | DriverState::Stopped
        ) {
            return;
        }
        info!(driver = %self.spec.name, peer = %link.peer, service = %service, "remote driver connected");
        self.gen += 1;
        self.spec.service = service;
        self.link = Some(link);
        self.status.starts += 1;
        if self.status.starts > 1 {
            self.status.restarts += 1;
        }
        self.set_state(DriverState::Starting);
        self.send_options_and_start(ctx);
    }
}

impl Handler<Detach> for RemoteDriver {
    type Result = ();

    fn handle(&mut self, Detach { id }: Detach, ctx: &mut Self::Context) {
        if self.link.as_ref().is_none_or(|l| l.id != id) {
            return;
        }
        let peer = self.link.take().map(|l| l.peer).unwrap_or_default();
        warn!(driver = %self.spec.name, peer = %peer, "remote driver disconnected");
        self.lost("connection closed".into());
        if self.status.state == DriverState::Stopped {
            ctx.stop();
        }
    }
}

impl Handler<RemoteState> for RemoteDriver {
    type Result = ();

    fn handle(&mut self, RemoteState { id, state }: RemoteState, ctx: &mut Self::Context) {
        if self.link.as_ref().is_none_or(|l| l.id != id) {
            return;
        }
        match (state.as_str(), self.status.state) {
            ("alive", DriverState::Starting | DriverState::Reloading) => {
                info!(driver = %self.spec.name, peer = %self.status.peer.as_deref().unwrap_or("-"), "driver alive");
                self.status.alive_count += 1;
                self.set_state(DriverState::Alive);
            }
            // No process to replace: a cold restart is options and start again.
            ("cold", DriverState::Alive | DriverState::Reloading | DriverState::Starting) => {
                info!(driver = %self.spec.name, "remote driver asked for a cold restart");
                self.status.restarts += 1;
                self.gen += 1;
                self.set_state(DriverState::Starting);
                self.send_options_and_start(ctx);
            }
            ("stopped", DriverState::Stopping) => {
                self.end_role("driver stopped by the broker".into());
                ctx.stop();
            }
            (other, _) => debug!(driver = %self.spec.name, state = %other, "driver state ignored"),
        }
    }
}

impl Handler<ToDriver> for RemoteDriver {
    type Result = Result<(), SendError>;

    fn handle(&mut self, ToDriver(env): ToDriver, _: &mut Self::Context) -> Self::Result {
        if self.status.state == DriverState::Stopping {
            return Err(SendError::NotRunning);
        }
        self.write(env)
    }
}

impl Handler<Reconfigure> for RemoteDriver {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        let hot = msg.spec.options != self.spec.options || msg.dynamic != self.dynamic;
        let service = std::mem::take(&mut self.spec.service);
        self.spec = DriverSpec {
            service,
            ..msg.spec
        };
        self.dynamic = msg.dynamic;
        self.status.required = self.spec.required;
        if hot && self.status.state == DriverState::Alive {
            info!(driver = %self.spec.name, "options changed: hot reload");
            self.gen += 1;
            self.set_state(DriverState::Reloading);
            self.send_options_and_start(ctx);
        }
    }
}

impl Handler<StopDriver> for RemoteDriver {
    type Result = ResponseFuture<()>;

    /// `command stop`, up to `stop_wait_ms` for `state stopped`, then the role ends
    /// (the connection stays open as a client).
    fn handle(&mut self, _: StopDriver, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.stop_waiters.push(tx);
        let was_alive = self.status.state.serving();
        if self.link.is_none() {
            self.finish_stop();
            ctx.stop();
        } else if self.status.state != DriverState::Stopping {
            self.set_state(DriverState::Stopping);
            let wait = if was_alive && self.write(Envelope::new("command", "stop")).is_ok() {
                self.stop_wait
            } else {
                Duration::ZERO
            };
            ctx.run_later(wait, |act, ctx| {
                act.end_role("driver stopped by the broker".into());
                ctx.stop();
            });
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
