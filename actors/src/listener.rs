//! A TCP listener: accepts peers up to `max_connections` and starts a [`Connection`]
//! actor for each, as its child in the tree.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{info, warn};

use crate::conn_set::ConnectionSet;
use crate::connection::{Accepted, Connection, Drain, Services};
use crate::drivers::DriversSlot;
use crate::settings::ListenerSettings;
use crate::stats::BrokerStats;
use crate::supervisor::{ChildContext, ChildGuard, ChildSpec, Shutdown};
use crate::topic::registry::TopicsSlot;
use crate::tree::TreeEntry;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Starts the actor that serves one accepted peer; `None` if it cannot be served now
/// (the peer is then closed).
pub type Spawner = Arc<dyn Fn(Accepted) -> Option<Recipient<Drain>> + Send + Sync>;

/// The broker port's spawner: a [`Connection`] per peer, with the topic registry and
/// driver host that run at the time.
pub fn broker_connections(topics: TopicsSlot, drivers: DriversSlot) -> Spawner {
    Arc::new(move |a| {
        let services = Services {
            topics: topics.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            drivers: drivers.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        Some(Connection::new(a, services).start().recipient())
    })
}

pub struct Listener {
    settings: ListenerSettings,
    spawn: Spawner,
    listener: Option<Rc<tokio::net::TcpListener>>,
    accepting: Option<SpawnHandle>,
    local: SocketAddr,
    conns: ConnectionSet,
    stats: Arc<BrokerStats>,
    entry: TreeEntry,
    guard: ChildGuard,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("name", &self.settings.name)
            .field("local", &self.local)
            .finish()
    }
}

impl Listener {
    /// A child spec for the supervisor. The socket is bound once, by the caller, and
    /// shared by every restart, so a restarted listener keeps its port.
    pub fn spec(
        settings: ListenerSettings,
        socket: std::net::TcpListener,
        spawn: Spawner,
        conns: ConnectionSet,
        stats: Arc<BrokerStats>,
    ) -> ChildSpec {
        let name = settings.name.clone();
        ChildSpec::new("listener", name, move |cx: ChildContext| {
            let std = socket
                .try_clone()
                .map_err(|e| format!("cannot clone listening socket: {e}"))?;
            std.set_nonblocking(true).map_err(|e| e.to_string())?;
            let local = std.local_addr().map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::from_std(std).map_err(|e| e.to_string())?;
            let entry = cx
                .tree
                .register(Some(cx.parent), "listener", settings.name.clone());
            entry.set_detail(local.to_string());
            let actor = Listener {
                settings: settings.clone(),
                spawn: spawn.clone(),
                listener: Some(Rc::new(listener)),
                accepting: None,
                local,
                conns: conns.clone(),
                stats: stats.clone(),
                entry,
                guard: cx.guard,
            };
            Ok(actor.start().recipient())
        })
    }

    fn accept_next(&mut self, ctx: &mut Context<Self>) {
        let Some(listener) = self.listener.clone() else {
            return;
        };
        let fut = async move { listener.accept().await }.into_actor(self).map(|r, act, ctx| match r {
            Ok((stream, peer)) => {
                act.on_accept(stream, peer);
                act.accept_next(ctx);
            }
            Err(e) => {
                // Out of descriptors or a transient error: pause instead of spinning.
                warn!(listener = %act.settings.name, error = %e, "accept failed, retrying in 100 ms");
                ctx.run_later(Duration::from_millis(100), |act, ctx| act.accept_next(ctx));
            }
        });
        self.accepting = Some(ctx.spawn(fut));
    }

    fn on_accept(&mut self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        if self.conns.len() >= self.settings.max_connections {
            BrokerStats::add(&self.stats.connections_refused, 1);
            warn!(listener = %self.settings.name, peer = %peer, max_connections = self.settings.max_connections, "connection refused: max_connections reached");
            return;
        }
        // Output is already batched per turn, so Nagle would only add latency.
        let _ = stream.set_nodelay(true);
        let id = NEXT_CONNECTION.fetch_add(1, Relaxed);
        BrokerStats::add(&self.stats.connections_accepted, 1);
        let accepted = Accepted {
            id,
            stream,
            peer,
            settings: self.settings.connection.clone(),
            stats: self.stats.clone(),
            entry: self.entry.child(self.settings.child_kind, peer.to_string()),
            membership: self.conns.join(id, self.stats.clone()),
        };
        match (self.spawn)(accepted) {
            Some(addr) => self.conns.attach(id, addr),
            None => {
                warn!(listener = %self.settings.name, peer = %peer, "no service behind this listener, connection closed")
            }
        }
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(listener = %self.settings.name, addr = %self.local, "listening");
        self.accept_next(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.guard.stopped();
    }
}

impl Handler<Shutdown> for Listener {
    type Result = ResponseActFuture<Self, ()>;

    /// Stops accepting, tells every connection to flush and close, and answers once
    /// they all have.
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        if let Some(h) = self.accepting.take() {
            ctx.cancel_future(h);
        }
        self.listener = None;
        let conns = self.conns.clone();
        info!(listener = %self.settings.name, open = conns.len(), "stopped accepting, draining connections");
        Box::pin(
            async move {
                for addr in conns.addrs() {
                    let _ = addr.send(Drain).await;
                }
                conns.wait_empty().await;
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}
