//! A TCP listener: accepts peers up to `max_connections` (and `max_connections_per_ip`
//! from one address) and starts a [`Connection`] actor for each, as its child in the
//! tree. Refusals and failed accepts are logged at most once a second, with a count.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{info, warn};

use crate::conn_set::ConnectionSet;
use crate::connection::{Accepted, Connection, Drain, Services};
use crate::drivers::DriversSlot;
use crate::ratelog::{RateLog, SharedRateLog};
use crate::settings::ListenerSettings;
use crate::stats::BrokerStats;
use crate::supervisor::{ChildContext, ChildGuard, ChildSpec, Shutdown};
use crate::topic::registry::TopicsSlot;
use crate::tree::TreeEntry;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// The pause after a failed accept: out of descriptors, retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Why a peer was turned away.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Full,
    PerIp,
    /// Not from a network in the listener's `allow` list.
    NotAllowed,
}

/// The log-line budgets of a listener's repeated warnings.
#[derive(Debug)]
struct Logs {
    refused_full: RateLog,
    refused_per_ip: RateLog,
    not_allowed: RateLog,
    accept_failed: RateLog,
    /// Shared with the connections, which log their own first-frame timeouts.
    first_frame: SharedRateLog,
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            refused_full: RateLog::per_second(),
            refused_per_ip: RateLog::per_second(),
            not_allowed: RateLog::per_second(),
            accept_failed: RateLog::per_second(),
            first_frame: SharedRateLog::per_second(),
        }
    }
}

/// Starts the actor that serves one accepted peer; `None` if it cannot be served now
/// (the peer is then closed).
pub type Spawner = Arc<dyn Fn(Accepted) -> Option<Recipient<Drain>> + Send + Sync>;

/// The broker port's spawner: a [`Connection`] per peer, with the topic registry and
/// driver host that run at the time; with `tls`, every peer speaks TLS.
pub fn broker_connections(
    topics: TopicsSlot,
    drivers: DriversSlot,
    auth: Option<crate::auth::Auth>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Spawner {
    let auth_log = SharedRateLog::per_second();
    Arc::new(move |a| {
        let services = Services {
            topics: topics.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            drivers: drivers.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            auth: auth.clone(),
            auth_log: auth_log.clone(),
        };
        Some(
            Connection::new(a, services, tls.as_ref())
                .start()
                .recipient(),
        )
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
    logs: Logs,
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
                logs: Logs::default(),
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
                // Out of descriptors (EMFILE, ENFILE) or a transient error: the peer
                // stays in the backlog, so retrying at once would spin on it.
                BrokerStats::add(&act.stats.accept_errors, 1);
                if let Some(suppressed) = act.logs.accept_failed.allow() {
                    warn!(listener = %act.settings.name, error = %e, suppressed, retry_ms = ACCEPT_BACKOFF.as_millis() as u64, "accept failed, backing off");
                }
                ctx.run_later(ACCEPT_BACKOFF, |act, ctx| act.accept_next(ctx));
            }
        });
        self.accepting = Some(ctx.spawn(fut));
    }

    fn on_accept(&mut self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let ip = peer_key(&peer);
        if !self.settings.allow.is_empty() && !self.settings.allow.iter().any(|n| n.contains(ip)) {
            return self.refuse(stream, peer, Refusal::NotAllowed);
        }
        if self.conns.len() >= self.settings.max_connections {
            return self.refuse(stream, peer, Refusal::Full);
        }
        if self.conns.from_ip(ip) >= self.settings.max_connections_per_ip {
            return self.refuse(stream, peer, Refusal::PerIp);
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
            membership: self.conns.join(id, ip, self.stats.clone()),
            first_frame_log: self.logs.first_frame.clone(),
        };
        match (self.spawn)(accepted) {
            Some(addr) => self.conns.attach(id, addr),
            None => {
                warn!(listener = %self.settings.name, peer = %peer, "no service behind this listener, connection closed")
            }
        }
    }
}

impl Listener {
    /// Closes a peer at once (after a `state refused` envelope where the port speaks
    /// envelopes), counts it, and logs it within the line budget.
    fn refuse(&mut self, stream: tokio::net::TcpStream, peer: SocketAddr, why: Refusal) {
        BrokerStats::add(&self.stats.connections_refused, 1);
        let name = &self.settings.name;
        let (max, per_ip) = (
            self.settings.max_connections,
            self.settings.max_connections_per_ip,
        );
        let text = match why {
            Refusal::Full => {
                if let Some(suppressed) = self.logs.refused_full.allow() {
                    warn!(listener = %name, peer = %peer, max_connections = max, suppressed, "connection refused: max_connections reached");
                }
                format!("connection refused: {max} connections open, the most this port takes")
            }
            Refusal::PerIp => {
                BrokerStats::add(&self.stats.connections_refused_per_ip, 1);
                if let Some(suppressed) = self.logs.refused_per_ip.allow() {
                    warn!(listener = %name, peer = %peer, max_connections_per_ip = per_ip, suppressed, "connection refused: max_connections_per_ip reached");
                }
                format!(
                    "connection refused: {per_ip} connections open from {}, the most one address may have",
                    peer_key(&peer)
                )
            }
            Refusal::NotAllowed => {
                let port = if name.starts_with("maze") {
                    "maze"
                } else {
                    "broker"
                };
                self.stats.auth.failure(port, "not_allowed");
                if let Some(suppressed) = self.logs.not_allowed.allow() {
                    warn!(listener = %name, peer = %peer, suppressed, "connection refused: peer not in the allowed networks");
                }
                format!(
                    "connection refused: {} is not in the allowed networks",
                    peer_key(&peer)
                )
            }
        };
        if self.settings.refusal_notice {
            // One small write into an empty send buffer: it never blocks, and if it
            // does not fit the peer just sees the close.
            let _ = stream.try_write(&refusal_envelope(&text));
            let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
        }
    }

    /// Reports the lines each budget left out, once a second, so a burst that ended
    /// between two lines is still accounted for.
    fn report_suppressed(&mut self) {
        let name = &self.settings.name;
        if let Some(n) = self.logs.refused_full.flush() {
            warn!(listener = %name, suppressed = n, "connection refused: max_connections reached (repeats)");
        }
        if let Some(n) = self.logs.refused_per_ip.flush() {
            warn!(listener = %name, suppressed = n, "connection refused: max_connections_per_ip reached (repeats)");
        }
        if let Some(n) = self.logs.not_allowed.flush() {
            warn!(listener = %name, suppressed = n, "connection refused: peer not in the allowed networks (repeats)");
        }
        if let Some(n) = self.logs.accept_failed.flush() {
            warn!(listener = %name, suppressed = n, "accept failed, backing off (repeats)");
        }
        if let Some(n) = self.logs.first_frame.flush() {
            warn!(listener = %name, suppressed = n, "no complete frame in time, closing (repeats)");
        }
    }
}

/// `state refused` with label `error`: the one thing a refused broker-port peer reads.
fn refusal_envelope(text: &str) -> Vec<u8> {
    let env =
        switchyard_codecs::Envelope::new("state", "refused").with_label("error", text.to_string());
    let mut buf = bytes::BytesMut::with_capacity(env.encoded_len());
    match env.encode(&mut buf) {
        Ok(()) => buf.to_vec(),
        Err(_) => Vec::new(),
    }
}

/// The address peers are counted by: an IPv4-mapped IPv6 peer is its IPv4 address.
pub fn peer_key(peer: &SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(listener = %self.settings.name, addr = %self.local, "listening");
        ctx.run_interval(Duration::from_secs(1), |act, _| act.report_suppressed());
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
