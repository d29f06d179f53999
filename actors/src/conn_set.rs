//! The live connections of one listener, kept across listener restarts so shutdown
//! can drain every one of them and `max_connections` (in all, and per peer address)
//! counts them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use std::sync::atomic::Ordering::Relaxed;

use actix::Recipient;
use tokio::sync::watch;

use crate::connection::Drain;
use crate::stats::BrokerStats;

#[derive(Debug, Default)]
struct Members {
    conns: HashMap<u64, Recipient<Drain>>,
    /// Connections per peer address, from `join` until the membership drops (so a
    /// peer's connections count before their actor has started).
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug, Clone)]
pub struct ConnectionSet {
    inner: Arc<Mutex<Members>>,
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
    ip: IpAddr,
    stats: Arc<BrokerStats>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut m = self.set.lock();
        m.conns.remove(&self.id);
        if let Some(n) = m.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.per_ip.remove(&self.ip);
            }
        }
        self.set.count.send_replace(m.conns.len());
        self.stats.connections_open.fetch_sub(1, Relaxed);
    }
}

impl ConnectionSet {
    fn lock(&self) -> MutexGuard<'_, Members> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves a place for connection `id` from `ip`; [`ConnectionSet::attach`] fills
    /// it in.
    pub fn join(&self, id: u64, ip: IpAddr, stats: Arc<BrokerStats>) -> Membership {
        BrokerStats::add(&stats.connections_open, 1);
        *self.lock().per_ip.entry(ip).or_default() += 1;
        Membership {
            set: self.clone(),
            id,
            ip,
            stats,
        }
    }

    pub fn attach(&self, id: u64, addr: Recipient<Drain>) {
        let mut m = self.lock();
        m.conns.insert(id, addr);
        self.count.send_replace(m.conns.len());
    }

    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connections open from `ip`.
    pub fn from_ip(&self, ip: IpAddr) -> usize {
        self.lock().per_ip.get(&ip).copied().unwrap_or(0)
    }

    pub fn addrs(&self) -> Vec<Recipient<Drain>> {
        self.lock().conns.values().cloned().collect()
    }

    /// Resolves once no connection is left.
    pub async fn wait_empty(&self) {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}
