//! Start-up and shutdown: bind, build the tree, serve, drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use switchyard_actors::supervisor::{AddChild, Status};
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
    supervisor: Addr<Supervisor>,
    tree: ActorTree,
    stats: Arc<BrokerStats>,
    connections: ConnectionSet,
    grace: Duration,
    tree_interval: Option<Duration>,
}

fn bind(what: &'static str, addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind { what, addr, source })
}

/// Binds every port and starts the actor tree. Must run inside an actix `System`.
pub async fn start(config: &Config) -> Result<Broker, StartError> {
    let socket = bind("broker.bind", config.broker.bind)?;
    let addr = socket.local_addr().map_err(|source| StartError::Bind {
        what: "broker.bind",
        addr: config.broker.bind,
        source,
    })?;
    let tree = ActorTree::new();
    let stats = Arc::new(BrokerStats::default());
    let connections = ConnectionSet::default();
    let supervisor = Supervisor::new(tree.clone(), "root", config.restart_policy()).start();
    let listener = Listener::spec(
        config.broker_listener(),
        socket,
        connections.clone(),
        stats.clone(),
    );
    // Not a data path: one control message at start-up, waited for.
    let _ = supervisor.send(AddChild(listener)).await;
    info!(addr = %addr, "broker started");
    Ok(Broker {
        addr,
        supervisor,
        tree,
        stats,
        connections,
        grace: Duration::from_millis(config.shutdown.grace_ms),
        tree_interval: (config.debug.tree_interval_ms > 0)
            .then(|| Duration::from_millis(config.debug.tree_interval_ms)),
    })
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
            open = self.connections.len(),
            "shutting down"
        );
        match tokio::time::timeout(self.grace, self.supervisor.send(Shutdown)).await {
            Ok(_) => info!("shutdown complete"),
            Err(_) => warn!(
                open = self.connections.len(),
                "grace period over, closing the remaining connections"
            ),
        }
    }
}
