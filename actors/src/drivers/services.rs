//! Named services: the table of `svc:<name>` instances (TCP clients that sent `rpc
//! register`), how a call picks one, and each service's counters.
//!
//! A call goes to the instance with the fewest calls in flight that is below its
//! `max_inflight`; among equals, the one picked longest ago (round robin). A service's
//! first instance sets its group; an instance of another group is refused, so two
//! fleets that happen to share a name never take each other's calls unnoticed. The
//! table is pure bookkeeping: [`super::service_route`] does the I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;
use switchyard_codecs::Envelope;

/// `max_inflight` when the register frame has none (at most the configured most).
pub const DEFAULT_MAX_INFLIGHT: u32 = 256;
/// The most `drivers.service_max_inflight` may be: calls in flight hold their envelopes
/// for retries.
pub const MAX_INFLIGHT_LIMIT: u32 = 65_536;

/// One registered instance: a connection serving a service.
#[derive(Debug, Clone)]
pub struct Instance {
    pub client: u64,
    pub id: String,
    pub peer: String,
    pub max_inflight: u32,
    pub in_flight: u32,
    /// Calls it has been given.
    pub calls: u64,
    /// When it was last picked (the table's pick counter), for round robin.
    last_pick: u64,
}

/// A service: its group, its instances, its counters.
#[derive(Debug, Default)]
pub struct Service {
    pub group: String,
    pub instances: Vec<Instance>,
    pub calls: u64,
    pub errors: u64,
    /// Calls moved to another instance when theirs left (`retry`).
    pub retries: u64,
    pub latency: Histogram,
}

impl Service {
    fn in_flight(&self) -> u32 {
        self.instances.iter().map(|i| i.in_flight).sum()
    }
}

/// A call in flight to an instance, by `(caller, rpcID)`.
#[derive(Debug)]
pub struct ServiceCall {
    pub service: String,
    pub client: u64,
    pub started: Instant,
    /// The call as sent, kept when the caller asked for `retry`.
    pub retry: Option<Envelope>,
}

/// Why a call found no instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoInstance {
    #[error("service {0} has no instance")]
    None(String),
    #[error("service {0} is full: every instance has max_inflight calls in flight")]
    Full(String),
}

/// What `rpc register` asked for.
#[derive(Debug, Clone)]
pub struct Registration {
    pub service: String,
    pub group: Option<String>,
    pub max_inflight: u32,
    pub id: Option<String>,
    pub peer: String,
}

#[derive(Debug, Default)]
pub struct ServiceTable {
    services: BTreeMap<String, Service>,
    calls: HashMap<(String, String), ServiceCall>,
    picks: u64,
    next_id: u64,
}

impl ServiceTable {
    /// Adds (or, for the same connection, updates) an instance; returns its group and id.
    pub fn register(&mut self, client: u64, r: Registration) -> Result<(String, String), String> {
        let group = r.group.unwrap_or_else(|| r.service.clone());
        let svc = self.services.entry(r.service.clone()).or_default();
        if svc.instances.is_empty() {
            svc.group = group.clone();
        } else if svc.group != group {
            return Err(format!(
                "service {} is served by group {}, not {group}",
                r.service, svc.group
            ));
        }
        if let Some(i) = svc.instances.iter_mut().find(|i| i.client == client) {
            i.max_inflight = r.max_inflight;
            if let Some(id) = r.id {
                i.id = id;
            }
            return Ok((group, i.id.clone()));
        }
        self.next_id += 1;
        let id = r.id.unwrap_or_else(|| format!("{client}-{}", self.next_id));
        svc.instances.push(Instance {
            client,
            id: id.clone(),
            peer: r.peer,
            max_inflight: r.max_inflight,
            in_flight: 0,
            calls: 0,
            last_pick: 0,
        });
        Ok((group, id))
    }

    /// Removes `client`'s instance of `service`; false when it had none.
    pub fn unregister(&mut self, client: u64, service: &str) -> bool {
        let Some(svc) = self.services.get_mut(service) else {
            return false;
        };
        let before = svc.instances.len();
        svc.instances.retain(|i| i.client != client);
        before != svc.instances.len()
    }

    /// Removes every instance of a connection that closed.
    pub fn remove_client(&mut self, client: u64) {
        for svc in self.services.values_mut() {
            svc.instances.retain(|i| i.client != client);
        }
    }

    /// Picks the instance for a new call, skipping `not`; the call is counted, and so
    /// is its refusal.
    pub fn pick(&mut self, service: &str, not: Option<u64>) -> Result<u64, NoInstance> {
        let r = self.choose(service, not);
        if let Some(svc) = self.services.get_mut(service) {
            svc.calls += 1;
            svc.errors += u64::from(r.is_err());
        }
        r
    }

    /// Picks another instance for a call whose instance left (`retry`): the same call,
    /// so not counted again; a success counts as a retry.
    pub fn pick_again(&mut self, service: &str, not: u64) -> Result<u64, NoInstance> {
        let r = self.choose(service, Some(not));
        if let (Ok(_), Some(svc)) = (&r, self.services.get_mut(service)) {
            svc.retries += 1;
        }
        r
    }

    fn choose(&mut self, service: &str, not: Option<u64>) -> Result<u64, NoInstance> {
        let Some(svc) = self.services.get_mut(service) else {
            return Err(NoInstance::None(service.to_string()));
        };
        if !svc.instances.iter().any(|i| Some(i.client) != not) {
            return Err(NoInstance::None(service.to_string()));
        }
        let best = svc
            .instances
            .iter_mut()
            .filter(|i| Some(i.client) != not && i.in_flight < i.max_inflight)
            .min_by_key(|i| (i.in_flight, i.last_pick))
            .ok_or_else(|| NoInstance::Full(service.to_string()))?;
        self.picks += 1;
        best.last_pick = self.picks;
        best.calls += 1;
        best.in_flight += 1;
        Ok(best.client)
    }

    /// Remembers a call in flight to `client` (after [`ServiceTable::pick`]).
    pub fn track(&mut self, caller: &str, id: &str, call: ServiceCall) {
        // A caller that reuses a pending rpcID replaces its call (as `Rpc::open` does):
        // the old one's instance must not count it for ever.
        if let Some(old) = self
            .calls
            .insert((caller.to_string(), id.to_string()), call)
        {
            self.release(&old.service, old.client);
        }
    }

    /// A call that went out with no answer expected (`rpcID skip`): not in flight.
    pub fn release(&mut self, service: &str, client: u64) {
        if let Some(i) = self
            .services
            .get_mut(service)
            .and_then(|s| s.instances.iter_mut().find(|i| i.client == client))
        {
            i.in_flight = i.in_flight.saturating_sub(1);
        }
    }

    /// A call was answered (by its instance, its deadline, or the broker): counted and
    /// forgotten. Returns the client it was in flight to.
    pub fn done(&mut self, caller: &str, id: &str, ok: bool) -> Option<u64> {
        let call = self.calls.remove(&(caller.to_string(), id.to_string()))?;
        self.release(&call.service, call.client);
        if let Some(svc) = self.services.get_mut(&call.service) {
            svc.latency.record(call.started.elapsed());
            if !ok {
                svc.errors += 1;
            }
        }
        Some(call.client)
    }

    /// Takes the calls in flight to `client` for `service` (every service: `None`).
    pub fn take_calls_to(
        &mut self,
        client: u64,
        service: Option<&str>,
    ) -> Vec<((String, String), ServiceCall)> {
        let keys: Vec<(String, String)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.client == client && service.is_none_or(|s| s == c.service))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.calls.remove(&k).map(|c| (k, c)))
            .collect()
    }

    /// A call whose instance left was answered with an error: counted.
    pub fn failed(&mut self, service: &str) {
        if let Some(svc) = self.services.get_mut(service) {
            svc.errors += 1;
        }
    }

    /// Discovery and stats, by service name.
    pub fn view(&self) -> Vec<ServiceView> {
        self.services
            .iter()
            .map(|(name, s)| ServiceView {
                name: name.clone(),
                group: s.group.clone(),
                calls: s.calls,
                errors: s.errors,
                retries: s.retries,
                in_flight: s.in_flight(),
                latency_us: Quantiles {
                    p50: s.latency.quantile_us(0.5),
                    p99: s.latency.quantile_us(0.99),
                    p999: s.latency.quantile_us(0.999),
                },
                instances: s
                    .instances
                    .iter()
                    .map(|i| InstanceView {
                        id: i.id.clone(),
                        feature: format!("client:{}", i.client),
                        peer: i.peer.clone(),
                        in_flight: i.in_flight,
                        max_inflight: i.max_inflight,
                        calls: i.calls,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// A service as `broker services`, `/v1/services` and `ListServices` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ServiceView {
    pub name: String,
    pub group: String,
    pub calls: u64,
    pub errors: u64,
    pub retries: u64,
    pub in_flight: u32,
    pub latency_us: Quantiles,
    pub instances: Vec<InstanceView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct InstanceView {
    pub id: String,
    pub feature: String,
    pub peer: String,
    pub in_flight: u32,
    pub max_inflight: u32,
    pub calls: u64,
}

/// Latency quantiles in microseconds (each the upper bound of its histogram bucket;
/// 0 before the first answered call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Quantiles {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
}

/// Buckets a quarter of an octave wide (each bound ~19% above the last) from 1 µs to
/// about 70 minutes: quantiles within 19%, in a fixed 1 KiB per service.
const BUCKETS: usize = 128;

#[derive(Debug, Clone)]
pub struct Histogram {
    counts: [u64; BUCKETS],
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
            total: 0,
        }
    }
}

/// The upper bound of bucket `i`, in microseconds.
fn bound_us(i: usize) -> u64 {
    2f64.powf(i as f64 / 4.0).ceil() as u64
}

impl Histogram {
    pub fn record(&mut self, took: Duration) {
        let us = took.as_micros().max(1) as f64;
        let i = ((us.log2() * 4.0).ceil() as usize).min(BUCKETS - 1);
        self.counts[i] += 1;
        self.total += 1;
    }

    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bound_us(i);
            }
        }
        bound_us(BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(service: &str, group: Option<&str>, max: u32) -> Registration {
        Registration {
            service: service.into(),
            group: group.map(String::from),
            max_inflight: max,
            id: None,
            peer: "127.0.0.1:1".into(),
        }
    }

    #[test]
    fn least_outstanding_then_round_robin() {
        let mut t = ServiceTable::default();
        for c in [1, 2, 3] {
            t.register(c, reg("svc:a", None, 10)).unwrap();
        }
        let picks: Vec<u64> = (0..3).map(|_| t.pick("svc:a", None).unwrap()).collect();
        assert_eq!(picks, [1, 2, 3]);
        // 2 finishes: it has the fewest in flight, so it goes first.
        t.release("svc:a", 2);
        assert_eq!(t.pick("svc:a", None).unwrap(), 2);
        assert_eq!(t.pick("svc:a", None).unwrap(), 1);
        assert_eq!(t.pick("svc:a", Some(2)).unwrap(), 3);
    }

    #[test]
    fn full_and_empty_services_refuse_at_once() {
        let mut t = ServiceTable::default();
        assert_eq!(t.pick("svc:a", None), Err(NoInstance::None("svc:a".into())));
        t.register(1, reg("svc:a", None, 1)).unwrap();
        assert_eq!(t.pick("svc:a", None), Ok(1));
        assert_eq!(t.pick("svc:a", None), Err(NoInstance::Full("svc:a".into())));
        assert!(t.unregister(1, "svc:a"));
        assert!(matches!(t.pick("svc:a", None), Err(NoInstance::None(_))));
        let v = &t.view()[0];
        assert_eq!((v.calls, v.errors), (3, 2));
    }

    #[test]
    fn a_reused_rpc_id_releases_the_old_call() {
        let mut t = ServiceTable::default();
        t.register(1, reg("svc:a", None, 10)).unwrap();
        for _ in 0..2 {
            let client = t.pick("svc:a", None).unwrap();
            let call = ServiceCall {
                service: "svc:a".into(),
                client,
                started: Instant::now(),
                retry: None,
            };
            t.track("client:9", "1", call);
        }
        assert_eq!(t.view()[0].in_flight, 1);
        assert_eq!(t.done("client:9", "1", true), Some(1));
        assert_eq!(t.view()[0].in_flight, 0);
    }

    #[test]
    fn one_group_per_service() {
        let mut t = ServiceTable::default();
        assert_eq!(t.register(1, reg("svc:a", Some("g"), 1)).unwrap().0, "g");
        assert!(t.register(2, reg("svc:a", None, 1)).is_err());
        t.remove_client(1);
        assert_eq!(t.register(2, reg("svc:a", None, 1)).unwrap().0, "svc:a");
    }

    #[test]
    fn quantiles_are_bucket_bounds() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_us(0.5), 0);
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile_us(0.5);
        assert!((500..=600).contains(&p50), "{p50}");
        let p999 = h.quantile_us(0.999);
        assert!((1000..=1200).contains(&p999), "{p999}");
    }
}
