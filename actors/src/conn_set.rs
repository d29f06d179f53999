//! The live connections of one listener, kept across listener restarts so shutdown
//! can drain every one of them and `max_connections` counts them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use std::sync::atomic::Ordering::Relaxed;

use actix::Recipient;
use tokio::sync::watch;

use crate::connection::Drain;
use crate::stats::BrokerStats;

#[derive(Debug, Clone)]
pub struct ConnectionSet {
    inner: Arc<Mutex<HashMap<u64, Recipient<Drain>>>>,
    count: Arc<watch::Sender<usize>>,
}

impl Default for ConnectionSet {
    fn default() -> Self {
        ConnectionSet {
            inner: Arc::default(),
            count: Arc::new(watch::channel(0).0),
        }
    }
}

/// A connection's place in the set, held by its actor; dropping it (with the actor,
/// however it ends) removes the connection and counts it closed.
#[derive(Debug)]
pub struct Membership {
    set: ConnectionSet,
    id: u64,
    stats: Arc<BrokerStats>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut map = self.set.lock();
        map.remove(&self.id);
        self.set.count.send_replace(map.len());
        self.stats.connections_open.fetch_sub(1, Relaxed);
    }
}

impl ConnectionSet {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Recipient<Drain>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves a place for connection `id`; [`ConnectionSet::attach`] fills it in.
    pub fn join(&self, id: u64, stats: Arc<BrokerStats>) -> Membership {
        BrokerStats::add(&stats.connections_open, 1);
        Membership {
            set: self.clone(),
            id,
            stats,
        }
    }

    pub fn attach(&self, id: u64, addr: Recipient<Drain>) {
        let mut map = self.lock();
        map.insert(id, addr);
        self.count.send_replace(map.len());
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn addrs(&self) -> Vec<Recipient<Drain>> {
        self.lock().values().cloned().collect()
    }

    /// Resolves once no connection is left.
    pub async fn wait_empty(&self) {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}
