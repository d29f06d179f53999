//! RPC bookkeeping: calls in flight keyed by `(caller, rpcID)` (returns are routed by
//! `caller`, and rpcIDs are only unique per caller), their deadlines, and counters.
//! A return is taken only from the feature its call was routed to: `caller` and
//! `rpcID` are labels anyone can write, so they alone cannot tell the real answer.
//!
//! Deadlines are kept in one ordered map served by one timer (see
//! `super::deadlines`), not a timer per call: an actix actor polls every future it
//! has spawned each time it wakes, so a timer per call made every message to the host
//! cost as much as the calls of the last `rpc_timeout_ms` (10 s at 10 k calls/s: 100 k
//! futures polled per message).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::oneshot;

/// What a broker-side caller gets back.
pub type LocalReply = oneshot::Sender<Result<Bytes, String>>;

#[derive(Debug)]
pub struct PendingCall {
    seq: u64,
    pub target: String,
    pub method: String,
    pub started: Instant,
    /// When it is answered with `error=timeout` if nothing came.
    pub deadline: Instant,
    /// Set for calls the broker itself made (caller `-`).
    pub local: Option<LocalReply>,
}

/// RPC counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RpcStats {
    pub calls: u64,
    pub returns: u64,
    /// Returns with an `error` label, ours included.
    pub errors: u64,
    pub timeouts: u64,
    /// Calls to a feature that is not loaded or not alive, answered at once.
    pub unroutable: u64,
    /// Returns that arrived after their call timed out (or for no call), dropped.
    pub late_returns: u64,
    /// Returns for a call in flight from a feature the call was not routed to, dropped.
    pub forged_returns: u64,
    /// Sum of completed calls' latency, in microseconds.
    pub latency_us_total: u64,
    /// Completed calls by latency: `latency_buckets[i]` counts calls at most
    /// `LATENCY_BOUNDS_S[i]` seconds (and above the previous bound); the last counts the rest.
    pub latency_buckets: [u64; LATENCY_BOUNDS_S.len() + 1],
}

/// Upper bounds, in seconds, of the RPC latency histogram.
pub const LATENCY_BOUNDS_S: [f64; 10] =
    [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// A call's key: `caller`, LF, `rpcID`. One string, so that a lookup builds it in a
/// reused buffer instead of allocating a pair of strings per return; `caller` is
/// written by the broker (`client:<n>`, `driver:<name>`, `-`) and never holds a LF.
fn join_key(buf: &mut String, caller: &str, id: &str) {
    buf.clear();
    buf.push_str(caller);
    buf.push('\n');
    buf.push_str(id);
}

fn split_key(key: &str) -> (String, String) {
    let (caller, id) = key.split_once('\n').unwrap_or((key, ""));
    (caller.to_string(), id.to_string())
}

#[derive(Debug, Default)]
pub struct Rpc {
    pending: FxHashMap<String, PendingCall>,
    /// The calls in `pending` by deadline (and sequence number, which makes keys unique).
    deadlines: BTreeMap<(Instant, u64), String>,
    /// Where lookups build their key.
    scratch: String,
    /// The one deadline timer: when it fires, and its handle to cancel it.
    pub(super) timer: Option<(Instant, actix::SpawnHandle)>,
    seq: u64,
    next_local: u64,
    pub stats: RpcStats,
}

impl Rpc {
    /// Records a call answered with a timeout after `timeout`.
    pub fn open(
        &mut self,
        caller: &str,
        id: &str,
        target: &str,
        method: &str,
        local: Option<LocalReply>,
        timeout: Duration,
    ) {
        self.seq += 1;
        self.stats.calls += 1;
        let started = Instant::now();
        let deadline = started.checked_add(timeout).unwrap_or(started + FAR);
        let call = PendingCall {
            seq: self.seq,
            target: target.to_string(),
            method: method.to_string(),
            started,
            deadline,
            local,
        };
        let mut key = String::with_capacity(caller.len() + 1 + id.len());
        join_key(&mut key, caller, id);
        self.deadlines.insert((deadline, self.seq), key.clone());
        if let Some(old) = self.pending.insert(key, call) {
            self.deadlines.remove(&(old.deadline, old.seq));
            tracing::warn!(caller, rpc_id = id, target = %old.target, "rpcID reused while its call is pending; the old call is dropped");
        }
    }

    /// The earliest deadline of a call in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(at, _)| *at)
    }

    /// Takes the calls whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<((String, String), PendingCall)> {
        let mut out = Vec::new();
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            if let Some(call) = self.pending.remove(&key) {
                self.stats.timeouts += 1;
                out.push((split_key(&key), call));
            }
        }
        out
    }

    /// Takes the call of `caller` and `id` out of both maps.
    fn take(&mut self, caller: &str, id: &str) -> Option<PendingCall> {
        join_key(&mut self.scratch, caller, id);
        let call = self.pending.remove(self.scratch.as_str())?;
        self.deadlines.remove(&(call.deadline, call.seq));
        Some(call)
    }

    fn get_mut(&mut self, caller: &str, id: &str) -> Option<&mut PendingCall> {
        join_key(&mut self.scratch, caller, id);
        self.pending.get_mut(self.scratch.as_str())
    }

    /// Takes the call a return from feature `from` answers. A return for a call in
    /// flight to another feature is refused and the call stays pending.
    pub fn close_from(
        &mut self,
        caller: &str,
        id: &str,
        from: &str,
    ) -> Result<PendingCall, Refused> {
        // The target's name only when it is not the answering feature's.
        let other = self
            .get_mut(caller, id)
            .map(|call| (!same_feature(&call.target, from)).then(|| call.target.clone()));
        match other {
            None => {
                self.stats.late_returns += 1;
                Err(Refused::NoCall)
            }
            Some(Some(target)) => {
                self.stats.forged_returns += 1;
                Err(Refused::Forged { target })
            }
            Some(None) => self.close(caller, id).ok_or(Refused::NoCall),
        }
    }

    /// Takes the call a return answers.
    pub fn close(&mut self, caller: &str, id: &str) -> Option<PendingCall> {
        let call = self.take(caller, id)?;
        self.stats.returns += 1;
        let took = call.started.elapsed();
        self.stats.latency_us_total += took.as_micros() as u64;
        let i = LATENCY_BOUNDS_S
            .iter()
            .position(|b| took.as_secs_f64() <= *b)
            .unwrap_or(LATENCY_BOUNDS_S.len());
        self.stats.latency_buckets[i] += 1;
        Some(call)
    }

    /// Points a call at the feature it was sent to in the end (a service's instance),
    /// so only that feature's return is taken.
    pub fn retarget(&mut self, caller: &str, id: &str, target: &str) {
        if let Some(c) = self.get_mut(caller, id) {
            c.target = target.to_string();
        }
    }

    pub fn is_pending(&mut self, caller: &str, id: &str) -> bool {
        self.get_mut(caller, id).is_some()
    }

    /// A fresh rpcID for a call the broker makes.
    pub fn local_id(&mut self) -> String {
        self.next_local += 1;
        self.next_local.to_string()
    }

    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Takes the calls in flight to `target`, except those in `keep`.
    pub fn take_for_target(
        &mut self,
        target: &str,
        keep: &[(String, String)],
    ) -> Vec<((String, String), PendingCall)> {
        let keys: Vec<(String, String)> = self
            .pending
            .iter()
            .filter(|(_, c)| c.target == target)
            .map(|(k, _)| split_key(k))
            .filter(|k| !keep.contains(k))
            .collect();
        keys.into_iter()
            .filter_map(|k| self.take(&k.0, &k.1).map(|c| (k, c)))
            .collect()
    }

    /// Fails every pending call (at shutdown).
    pub fn drain(&mut self) -> Vec<((String, String), PendingCall)> {
        self.deadlines.clear();
        self.pending
            .drain()
            .map(|(k, c)| (split_key(&k), c))
            .collect()
    }
}

/// A deadline for calls whose timeout overflows an `Instant`: never, in practice.
const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Why a return was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No call in flight has that `caller` and `rpcID` (it timed out, or never was).
    NoCall,
    /// The call in flight went to `target`, not to the feature that answered.
    Forged { target: String },
}

/// Is `from` (the feature a return came from) the feature `target` names? Client ids
/// are numbers, so `client:007` is `client:7`.
fn same_feature(target: &str, from: &str) -> bool {
    match (target.strip_prefix("client:"), from.strip_prefix("client:")) {
        (Some(t), Some(f)) => t.parse::<u64>().ok().is_some_and(|t| f.parse() == Ok(t)),
        _ => target == from,
    }
}

/// Go's `time.ParseDuration` for the forms the `timeout` label uses: `2s`, `1.5s`,
/// `300ms`, `1m30s`, `100us`; a bare `0` is zero. Anything else is `None`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "2", "s", "2x", "-1s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn returns_match_by_caller_and_id_and_expire_by_deadline() {
        let mut rpc = Rpc::default();
        rpc.open("driver:a", "0", "driver:b", "echo", None, Duration::ZERO);
        rpc.open("driver:c", "0", "driver:b", "echo", None, LONG);
        rpc.open("driver:d", "0", "driver:b", "echo", None, LONG);
        assert!(rpc.close("driver:c", "0").is_some());
        assert!(rpc.close("driver:c", "0").is_none());
        let now = Instant::now();
        let expired = rpc.expire(now);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].0, ("driver:a".to_string(), "0".to_string()));
        assert!(rpc.expire(now).is_empty());
        // Closed calls leave no deadline behind; the pending one's is next.
        assert!(rpc.next_deadline().is_some_and(|d| d > now + LONG / 2));
        assert!(rpc.close("driver:d", "0").is_some());
        assert_eq!(rpc.next_deadline(), None);
        assert_eq!(rpc.in_flight(), 0);
        assert_eq!(rpc.stats.timeouts, 1);
    }

    #[test]
    fn a_reused_rpc_id_keeps_only_the_new_deadline() {
        let mut rpc = Rpc::default();
        rpc.open("client:1", "7", "driver:b", "echo", None, Duration::ZERO);
        rpc.open("client:1", "7", "driver:b", "echo", None, LONG);
        assert!(rpc.expire(Instant::now()).is_empty());
        assert_eq!(rpc.in_flight(), 1);
        assert_eq!(rpc.drain().len(), 1);
        assert_eq!(rpc.next_deadline(), None);
    }

    #[test]
    fn returns_are_taken_only_from_the_called_feature() {
        let mut rpc = Rpc::default();
        rpc.open("client:1", "5", "driver:b", "echo", None, LONG);
        rpc.open("-", "6", "client:007", "echo", None, LONG);
        let forged = rpc.close_from("client:1", "5", "client:3").unwrap_err();
        assert_eq!(
            forged,
            Refused::Forged {
                target: "driver:b".into()
            }
        );
        assert_eq!(
            rpc.close_from("-", "6", "driver:b").unwrap_err(),
            Refused::Forged {
                target: "client:007".into()
            }
        );
        assert_eq!(rpc.stats.forged_returns, 2);
        assert!(rpc.close_from("client:1", "5", "driver:b").is_ok());
        assert!(rpc.close_from("-", "6", "client:7").is_ok());
        assert_eq!(
            rpc.close_from("-", "6", "client:7").unwrap_err(),
            Refused::NoCall
        );
        assert_eq!(rpc.stats.late_returns, 1);
        assert!(!same_feature("broker", "client:1") && !same_feature("client:x", "client:x"));
    }
}
