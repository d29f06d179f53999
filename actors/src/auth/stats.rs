//! [`AuthStats`]: failed logins by port and reason, refused operations by kind. Both
//! are rare events, so a small locked map is enough and keeps the label sets open.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// `auth_failures_total{port,reason}` and `permission_denied_total{op}`.
#[derive(Debug, Default)]
pub struct AuthStats {
    failures: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    denied: Mutex<BTreeMap<&'static str, u64>>,
}

impl AuthStats {
    /// A failed or missing login on `port` (`broker`, `maze`, `http`, `grpc`) for
    /// `reason` (`bad_credentials`, `login_required`, `login_timeout`, `not_allowed`).
    pub fn failure(&self, port: &'static str, reason: &'static str) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((port, reason))
            .or_default() += 1;
    }

    /// An operation refused for want of permission (`publish`, `subscribe`, `call`, ...).
    pub fn denied(&self, op: &'static str) {
        *self
            .denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op)
            .or_default() += 1;
    }

    pub fn failures(&self) -> Vec<((&'static str, &'static str), u64)> {
        let m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn denials(&self) -> Vec<(&'static str, u64)> {
        let m = self.denied.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn failures_for(&self, port: &str, reason: &str) -> u64 {
        self.failures()
            .into_iter()
            .find(|((p, r), _)| *p == port && *r == reason)
            .map_or(0, |(_, n)| n)
    }

    pub fn denied_for(&self, op: &str) -> u64 {
        self.denials()
            .into_iter()
            .find(|(o, _)| *o == op)
            .map_or(0, |(_, n)| n)
    }
}
