//! Start-up and shutdown: bind, build the tree, serve, drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use switchyard_actors::listener::{broker_connections, Spawner};
use switchyard_actors::maze::router::GetStatus;
use switchyard_actors::maze::{EventSource, MazeRouter, RouterSlot, RouterStatus, Session};
use switchyard_actors::supervisor::{AddChild, Status};
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
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    addr: SocketAddr,
    maze: Option<MazeHandle>,
    supervisor: Addr<Supervisor>,
    tree: ActorTree,
    stats: Arc<BrokerStats>,
    grace: Duration,
    tree_interval: Option<Duration>,
}

/// The maze's ports and its router.
#[derive(Debug, Clone)]
pub struct MazeHandle {
    pub event_addr: SocketAddr,
    pub client_addr: SocketAddr,
    router: RouterSlot,
}

fn bind(what: &'static str, addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind { what, addr, source })
}

/// Binds every port and starts the actor tree. Must run inside an actix `System`.
pub async fn start(config: &Config) -> Result<Broker, StartError> {
    let socket = bind("broker.bind", config.broker.bind)?;
    let addr = local(&socket, "broker.bind", config.broker.bind)?;
    let maze_sockets = match &config.maze {
        Some(m) => Some((
            bind("maze.event_bind", m.event_bind)?,
            bind("maze.client_bind", m.client_bind)?,
        )),
        None => None,
    };
    let tree = ActorTree::new();
    let stats = Arc::new(BrokerStats::default());
    let supervisor = Supervisor::new(tree.clone(), "root", config.restart_policy()).start();
    let topics = TopicsSlot::default();
    let mut children = vec![
        TopicRegistry::spec(config.topic_settings(), topics.clone()),
        Listener::spec(
            config.broker_listener(),
            socket,
            broker_connections(topics.clone()),
            ConnectionSet::default(),
            stats.clone(),
        ),
    ];
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
    for child in children {
        // Not a data path: control messages at start-up, each waited for.
        let _ = supervisor.send(AddChild(child)).await;
    }
    info!(addr = %addr, "broker started");
    Ok(Broker {
        addr,
        maze,
        supervisor,
        tree,
        stats,
        grace: Duration::from_millis(config.shutdown.grace_ms),
        tree_interval: (config.debug.tree_interval_ms > 0)
            .then(|| Duration::from_millis(config.debug.tree_interval_ms)),
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
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let mut usr1 =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                .map_err(|e| warn!(error = %e, "cannot listen for SIGUSR1"))
                .ok();
        let mut interval = self.tree_interval.map(tokio::time::interval);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = async { match usr1.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    self.log_tree("SIGUSR1");
                }
                _ = async { match interval.as_mut() { Some(i) => i.tick().await, None => std::future::pending().await } } => {
                    self.log_tree("debug.tree_interval_ms");
                }
            }
        }
        self.shutdown().await;
    }

    async fn shutdown(self) {
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
