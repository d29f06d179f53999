//! Start-up and shutdown: bind, build the tree, serve, drain.
//!
//! - `reload`: SIGHUP: drivers and rules, and the TLS certificates.

mod reload;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use switchyard_actors::chat::{ChatEngine, ChatSlot, ChatStats, GetChatStats, ListCommands};
use switchyard_actors::drivers::{
    CallFeature, DriverHost, DriverStatus, DriversSlot, GetHostStats, HostStats, ListDrivers,
    WaitReady,
};
use switchyard_actors::gateway::{Backend, Gateway};
use switchyard_actors::listener::{broker_connections, Spawner};
use switchyard_actors::maze::router::GetStatus;
use switchyard_actors::maze::{EventSource, MazeRouter, RouterSlot, RouterStatus, Session};
use switchyard_actors::supervisor::{AddChild, Status};
use switchyard_actors::tls::TlsCerts;
use switchyard_actors::topic::registry::TopicsSlot;
use switchyard_actors::topic::TopicRegistry;
use switchyard_actors::{
    ActorTree, BrokerStats, ChildStatus, ConnectionSet, Listener, Shutdown, Supervisor,
};
use tracing::{info, warn};

use crate::config::Config;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {what} to {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Driver(String),
    #[error("[auth]: {0}")]
    Auth(String),
    /// `[tls]` files that cannot be used; names the key and the problem.
    #[error("{0}")]
    Tls(#[from] switchyard_actors::tls::LoadError),
    #[error("tls: {0}")]
    TlsConfig(#[from] rustls::Error),
    /// Another broker (or a `switchyard restore`) holds the data dir.
    #[error("{0}")]
    DataDir(#[from] switchyard_actors::storage::LockError),
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    addr: SocketAddr,
    maze: Option<MazeHandle>,
    drivers: DriversSlot,
    chat: ChatSlot,
    gateway: GatewayHandle,
    /// Where SIGHUP re-reads the configuration from.
    config_path: Option<PathBuf>,
    /// The configuration in force, for reloads to compare against.
    config: Config,
    supervisor: Addr<Supervisor>,
    tree: ActorTree,
    stats: Arc<BrokerStats>,
    grace: Duration,
    tree_interval: Option<Duration>,
    /// The certificates of every TLS front end, when one is on (reloaded on SIGHUP).
    tls: Option<Arc<TlsCerts>>,
    /// Held while the broker lives: `switchyard restore` refuses a dir in use.
    _data_lock: switchyard_actors::storage::DirLock,
}

/// The gateway's addresses and its backend (for readiness).
#[derive(Debug, Clone, Default)]
pub struct GatewayHandle {
    pub http: Option<SocketAddr>,
    pub grpc: Option<SocketAddr>,
    backend: Option<Backend>,
}

/// The maze's ports and its router.
#[derive(Debug, Clone)]
pub struct MazeHandle {
    pub event_addr: SocketAddr,
    pub client_addr: SocketAddr,
    router: RouterSlot,
}

/// Binds `addr` with an accept queue of `backlog` (std's `bind` asks for 128, which a
/// connect burst overflows: the kernel then drops SYNs and clients wait seconds).
fn bind(
    what: &'static str,
    addr: SocketAddr,
    backlog: i32,
) -> Result<std::net::TcpListener, StartError> {
    use socket2::{Domain, Socket, Type};
    let open = || -> std::io::Result<std::net::TcpListener> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        // As std does on Unix: a restarted broker can bind while old peers linger.
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(backlog)?;
        Ok(s.into())
    };
    open().map_err(|source| StartError::Bind { what, addr, source })
}

/// Binds every port and starts the actor tree. Must run inside an actix `System`.
pub async fn start(config: &Config) -> Result<Broker, StartError> {
    // Before any port is bound: bad certificate files stop the start cleanly.
    let tls = config.tls_files().map(|f| TlsCerts::load(&f)).transpose()?;
    let data_lock = switchyard_actors::storage::DirLock::for_broker(&config.storage.dir)?;
    let broker_tls = match (&tls, config.broker.tls) {
        (Some(certs), true) => Some(certs.server_config(&[])?),
        _ => None,
    };
    let backlog = i32::try_from(config.broker.listen_backlog.get()).unwrap_or(i32::MAX);
    let bind = |what, addr| bind(what, addr, backlog);
    let socket = bind("broker.bind", config.broker.bind)?;
    let addr = local(&socket, "broker.bind", config.broker.bind)?;
    let gateway_sockets = match &config.gateway {
        Some(g) => (
            g.http_bind
                .map(|a| bind("gateway.http_bind", a))
                .transpose()?,
            g.grpc_bind
                .map(|a| bind("gateway.grpc_bind", a))
                .transpose()?,
        ),
        None => (None, None),
    };
    let maze_sockets = match &config.maze {
        Some(m) => Some((
            bind("maze.event_bind", m.event_bind)?,
            bind("maze.client_bind", m.client_bind)?,
        )),
        None => None,
    };
    let auth = config.auth_settings().map_err(StartError::Auth)?;
    // What drivers leave behind comes to us, to be ended with them (drivers::reaper).
    switchyard_actors::drivers::reaper::become_subreaper();
    let tree = ActorTree::new();
    let stats = Arc::new(BrokerStats::with_memory_limit(
        config.broker.memory_limit_bytes.get(),
    ));
    let supervisor = Supervisor::new(tree.clone(), "root", config.restart_policy()).start();
    let topics = TopicsSlot::default();
    let open = config.storage.max_open_segments.get() as usize;
    switchyard_actors::storage::files::set_open_files_limit(open);
    let drivers = DriversSlot::default();
    let chat_slot = ChatSlot::default();
    let mut children = vec![
        TopicRegistry::spec(config.topic_settings(), topics.clone()),
        DriverHost::spec(config.host_settings(), topics.clone(), drivers.clone()),
        Listener::spec(
            config.broker_listener(),
            socket,
            broker_connections(topics.clone(), drivers.clone(), auth.clone(), broker_tls),
            ConnectionSet::default(),
            stats.clone(),
        ),
    ];
    if let Some(chat) = config.chat_settings() {
        // After the driver host (it registers there), before the listeners.
        children.insert(
            2,
            ChatEngine::spec(chat, drivers.clone(), chat_slot.clone()),
        );
    }
    let mut maze = None;
    if let (Some(m), Some((events, clients)), Some(settings), Some((ev_set, cl_set))) = (
        &config.maze,
        maze_sockets,
        config.maze_settings(),
        config.maze_listeners(),
    ) {
        let handle = MazeHandle {
            event_addr: local(&events, "maze.event_bind", m.event_bind)?,
            client_addr: local(&clients, "maze.client_bind", m.client_bind)?,
            router: RouterSlot::default(),
        };
        // The router starts first, so the listeners find it.
        children.insert(
            0,
            MazeRouter::spec(
                settings.clone(),
                handle.router.clone(),
                topics.clone(),
                stats.clone(),
            ),
        );
        let slot = handle.router.clone();
        let spawn_source: Spawner =
            Arc::new(move |a| Some(EventSource::new(a, current(&slot)?).start().recipient()));
        let slot = handle.router.clone();
        let id_timeout = settings.id_timeout;
        let spawn_session: Spawner = Arc::new(move |a| {
            Some(
                Session::new(a, current(&slot)?, id_timeout)
                    .start()
                    .recipient(),
            )
        });
        // Shutdown runs in reverse: the event source stops first, then clients drain.
        children.push(Listener::spec(
            cl_set,
            clients,
            spawn_session,
            ConnectionSet::default(),
            stats.clone(),
        ));
        children.push(Listener::spec(
            ev_set,
            events,
            spawn_source,
            ConnectionSet::default(),
            stats.clone(),
        ));
        info!(events = %handle.event_addr, clients = %handle.client_addr, "follower maze on");
        maze = Some(handle);
    }
    let mut gateway = GatewayHandle::default();
    if let Some((mut settings, timeout)) = config.gateway_settings() {
        settings.auth = auth.clone();
        if config.gateway.as_ref().is_some_and(|g| g.tls) {
            settings.tls = tls.clone();
        }
        let (http, grpc) = gateway_sockets;
        gateway.http = http.as_ref().and_then(|l| l.local_addr().ok());
        gateway.grpc = grpc.as_ref().and_then(|l| l.local_addr().ok());
        let backend = Backend::new(
            topics.clone(),
            drivers.clone(),
            tree.clone(),
            stats.clone(),
            timeout,
        )
        .with_stream_buffer(settings.stream_buffer_bytes)
        .with_stream_keepalive(settings.stream_keepalive);
        gateway.backend = Some(backend.clone());
        // Last: at shutdown the API stops first.
        children.push(Gateway::spec(settings, backend, http, grpc));
    }
    for child in children {
        // Not a data path: control messages at start-up, each waited for.
        let _ = supervisor.send(AddChild(child)).await;
    }
    if let Err(why) = wait_for_required(&drivers).await {
        let _ = tokio::time::timeout(
            Duration::from_millis(config.shutdown.grace_ms),
            supervisor.send(Shutdown),
        )
        .await;
        return Err(StartError::Driver(why));
    }
    if let Some(b) = &gateway.backend {
        b.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    info!(addr = %addr, tls = config.broker.tls, mutual_tls = tls.as_ref().is_some_and(|t| t.mutual()), "broker started");
    Ok(Broker {
        addr,
        maze,
        drivers,
        chat: chat_slot,
        gateway,
        config_path: None,
        config: config.clone(),
        supervisor,
        tree,
        stats,
        grace: Duration::from_millis(config.shutdown.grace_ms),
        tree_interval: (config.debug.tree_interval_ms > 0)
            .then(|| Duration::from_millis(config.debug.tree_interval_ms)),
        tls,
        _data_lock: data_lock,
    })
}

fn local(
    socket: &std::net::TcpListener,
    what: &'static str,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    socket
        .local_addr()
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Start-up waits until every required driver is alive; one that cannot start aborts it.
async fn wait_for_required(slot: &DriversSlot) -> Result<(), String> {
    let host = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match host {
        Some(h) => h
            .send(WaitReady)
            .await
            .unwrap_or(Err("driver host stopped".into())),
        None => Err("driver host did not start".into()),
    }
}

fn current(slot: &RouterSlot) -> Option<Addr<MazeRouter>> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Starts the broker and serves until `shutdown` resolves, then drains.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    start(&config).await?.run_until(shutdown).await;
    Ok(())
}

impl Broker {
    /// The broker port's address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway's addresses, when `[gateway]` is configured.
    pub fn gateway(&self) -> &GatewayHandle {
        &self.gateway
    }

    /// The maze ports, when `[maze]` is configured.
    pub fn maze(&self) -> Option<&MazeHandle> {
        self.maze.as_ref()
    }

    /// The maze router's state, when the maze is on and its router is running.
    pub async fn maze_status(&self) -> Option<RouterStatus> {
        let router = current(&self.maze.as_ref()?.router)?;
        router.send(GetStatus).await.ok()
    }

    pub fn tree(&self) -> &ActorTree {
        &self.tree
    }

    pub fn stats(&self) -> &Arc<BrokerStats> {
        &self.stats
    }

    pub fn supervisor(&self) -> &Addr<Supervisor> {
        &self.supervisor
    }

    /// The root supervisor's children and their restart counts.
    pub async fn children(&self) -> Vec<ChildStatus> {
        self.supervisor.send(Status).await.unwrap_or_default()
    }

    /// Makes SIGHUP (and [`Broker::reload`]) re-read `path`.
    pub fn with_config_path(mut self, path: PathBuf) -> Self {
        self.config_path = Some(path);
        self
    }

    fn host(&self) -> Option<Addr<DriverHost>> {
        self.drivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every configured driver's status.
    pub async fn drivers(&self) -> Vec<DriverStatus> {
        match self.host() {
            Some(h) => h.send(ListDrivers).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Chat counters, when chat is on.
    pub async fn chat_stats(&self) -> Option<ChatStats> {
        let chat = self
            .chat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        chat.send(GetChatStats).await.ok()
    }

    /// Registered chat commands and their plugins.
    pub async fn chat_commands(&self) -> Vec<(String, String)> {
        let chat = self.chat.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match chat {
            Some(c) => c.send(ListCommands).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// RPC and event-bus counters.
    pub async fn driver_stats(&self) -> HostStats {
        match self.host() {
            Some(h) => h.send(GetHostStats).await.unwrap_or_default(),
            None => HostStats::default(),
        }
    }

    /// Calls `method` of `feature` (`driver:<name>`, `broker`, `client:<id>`) as the
    /// broker itself (caller `-`).
    pub async fn call(
        &self,
        feature: &str,
        method: &str,
        payload: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Bytes, String> {
        let host = self.host().ok_or("driver host not running")?;
        host.send(CallFeature {
            feature: feature.into(),
            method: method.into(),
            payload,
            timeout,
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Logs the actor tree at info level.
    pub fn log_tree(&self, why: &str) {
        info!(
            "actor tree ({} actors, on {why}):\n{}",
            self.tree.len(),
            self.tree.render().trim_end()
        );
    }

    /// Serves until `shutdown` resolves; prints the tree on SIGUSR1 and every
    /// `debug.tree_interval_ms`; then stops accepting, drains every connection and
    /// waits up to `shutdown.grace_ms` for them to close.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut usr1 = signal(SignalKind::user_defined1())
            .map_err(|e| warn!(error = %e, "cannot listen for SIGUSR1"))
            .ok();
        let mut hup = match self.config_path {
            Some(_) => signal(SignalKind::hangup())
                .map_err(|e| warn!(error = %e, "cannot listen for SIGHUP"))
                .ok(),
            None => None,
        };
        let mut interval = self.tree_interval.map(tokio::time::interval);
        // Every port is bound and SIGHUP has its handler: the service manager may
        // count the broker as started (a no-op without NOTIFY_SOCKET).
        crate::notify::ready();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = async { match usr1.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    self.log_tree("SIGUSR1");
                }
                Some(_) = async { match hup.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    info!("SIGHUP: reloading the configuration");
                    crate::notify::reloading();
                    let _ = self.reload().await;
                    crate::notify::ready();
                }
                _ = async { match interval.as_mut() { Some(i) => i.tick().await, None => std::future::pending().await } } => {
                    self.log_tree("debug.tree_interval_ms");
                }
            }
        }
        self.shutdown().await;
    }

    async fn shutdown(self) {
        crate::notify::stopping();
        if let Some(b) = &self.gateway.backend {
            // Not ready from now on: /healthz and gRPC health say so while we drain.
            b.draining.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        info!(
            grace_ms = self.grace.as_millis() as u64,
            open = self.stats.snapshot().connections_open,
            "shutting down"
        );
        match tokio::time::timeout(self.grace, self.supervisor.send(Shutdown)).await {
            Ok(_) => info!("shutdown complete"),
            Err(_) => warn!(
                open = self.stats.snapshot().connections_open,
                "grace period over, closing the remaining connections"
            ),
        }
    }
}
