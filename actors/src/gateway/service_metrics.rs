//! `/metrics` for named services: calls, errors, retries, calls in flight and instances
//! per service, and latency quantiles as gauges by `quantile` (no `_sum` or `_count`:
//! the broker keeps a histogram of buckets, and `service_calls_total` counts the calls).

use super::metrics::Out;
use crate::drivers::ServiceView;

pub(super) fn write(o: &mut Out, services: &[ServiceView]) {
    type Of = fn(&ServiceView) -> u64;
    let families: [(&str, &str, &str, Of); 5] = [
        (
            "service_calls_total",
            "counter",
            "Calls to a named service (svc:<name>), refused ones included.",
            |s| s.calls,
        ),
        (
            "service_errors_total",
            "counter",
            "Calls to a named service answered with an error (no instance, full, instance left, timeout, or the instance's own error).",
            |s| s.errors,
        ),
        (
            "service_retries_total",
            "counter",
            "Calls moved to another instance when theirs left (label retry).",
            |s| s.retries,
        ),
        (
            "service_in_flight",
            "gauge",
            "Calls in flight to a named service's instances.",
            |s| u64::from(s.in_flight),
        ),
        (
            "service_instances",
            "gauge",
            "Registered instances of a named service.",
            |s| s.instances.len() as u64,
        ),
    ];
    for (name, kind, help, of) in families {
        o.family(name, kind, help);
        for s in services {
            o.sample(name, &[("service", &s.name)], of(s));
        }
    }
    o.family(
        "service_latency_seconds",
        "gauge",
        "Latency quantiles of answered calls to a named service since the start (upper bound of a 19%-wide bucket).",
    );
    for s in services {
        let q = s.latency_us;
        for (quantile, us) in [("0.5", q.p50), ("0.99", q.p99), ("0.999", q.p999)] {
            o.sample(
                "service_latency_seconds",
                &[("service", &s.name), ("quantile", quantile)],
                us as f64 / 1e6,
            );
        }
    }
}
