//! `GET /metrics`: the broker's counters in the Prometheus text format (version 0.0.4).

use std::fmt::Write;

use super::backend::Backend;
use crate::drivers::rpc::LATENCY_BOUNDS_S;
use crate::drivers::{DriverState, GetHostStats};

pub(super) struct Out(String);

impl Out {
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(
            self.0,
            "# HELP switchyard_{name} {help}\n# TYPE switchyard_{name} {kind}"
        );
    }

    pub(super) fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        v: impl std::fmt::Display,
    ) {
        let _ = write!(self.0, "switchyard_{name}");
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {v}");
    }

    pub(super) fn one(&mut self, name: &str, kind: &str, help: &str, v: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// TLS handshakes per port, and failures per port and reason.
fn tls(o: &mut Out, t: &crate::tls::TlsStats) {
    use crate::tls::{FailReason, TlsPort};
    o.family(
        "tls_handshakes_total",
        "counter",
        "TLS handshakes completed, per port (broker, grpc).",
    );
    for p in TlsPort::ALL {
        o.sample(
            "tls_handshakes_total",
            &[("port", p.name())],
            t.handshakes(p),
        );
    }
    o.family(
        "tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed, per port and reason.",
    );
    for p in TlsPort::ALL {
        for r in FailReason::ALL {
            let n = t.failures(p, r);
            o.sample(
                "tls_handshake_failures_total",
                &[("port", p.name()), ("reason", r.label())],
                n,
            );
        }
    }
}

/// Renders every metric; parts that are not running are left out.
pub async fn render(b: &Backend) -> String {
    let mut o = Out(String::new());
    let s = b.stats.snapshot();
    o.family(
        "build_info",
        "gauge",
        "Always 1; the labels say which build answers (version, git commit, cargo profile).",
    );
    o.sample(
        "build_info",
        &[
            ("version", crate::build_info::VERSION),
            ("commit", crate::build_info::COMMIT),
            ("profile", crate::build_info::PROFILE),
        ],
        1,
    );
    o.one(
        "connections_open",
        "gauge",
        "Open TCP connections on every port.",
        s.connections_open,
    );
    o.one(
        "connections_accepted_total",
        "counter",
        "TCP connections accepted.",
        s.connections_accepted,
    );
    o.one(
        "connections_refused_total",
        "counter",
        "TCP connections refused at max_connections or max_connections_per_ip.",
        s.connections_refused,
    );
    o.one(
        "connections_refused_per_ip_total",
        "counter",
        "TCP connections refused because their address had max_connections_per_ip open.",
        s.connections_refused_per_ip,
    );
    o.one(
        "first_frame_timeouts_total",
        "counter",
        "Connections closed for sending no complete frame within the first-frame deadline.",
        s.first_frame_timeouts,
    );
    o.one(
        "accept_errors_total",
        "counter",
        "Failed accepts (out of file descriptors, mostly); the listener backs off and goes on.",
        s.accept_errors,
    );
    o.family(
        "auth_failures_total",
        "counter",
        "Failed or missing logins, by port and reason (bad_credentials, login_required, login_timeout, bad_request, not_allowed).",
    );
    for ((port, reason), n) in b.stats.auth.failures() {
        o.sample(
            "auth_failures_total",
            &[("port", port), ("reason", reason)],
            n,
        );
    }
    o.family(
        "permission_denied_total",
        "counter",
        "Operations refused for want of permission, by operation.",
    );
    for (op, n) in b.stats.auth.denials() {
        o.sample("permission_denied_total", &[("op", op)], n);
    }
    o.one(
        "frames_in_total",
        "counter",
        "Frames decoded from clients.",
        s.frames_in,
    );
    o.one(
        "frames_out_total",
        "counter",
        "Frames sent to clients.",
        s.frames_out,
    );
    o.one(
        "bytes_in_total",
        "counter",
        "Bytes read from clients.",
        s.bytes_in,
    );
    o.one(
        "bytes_out_total",
        "counter",
        "Bytes written to clients.",
        s.bytes_out,
    );
    o.one(
        "malformed_frames_total",
        "counter",
        "Connections closed for a malformed frame.",
        s.malformed_frames,
    );
    o.one(
        "oversize_frames_total",
        "counter",
        "Envelopes over broker.max_frame_bytes, skipped and answered with an error.",
        s.oversize_frames,
    );
    o.one(
        "slow_consumer_disconnects_total",
        "counter",
        "Clients cut off by the slow-consumer policy.",
        s.slow_consumer_disconnects,
    );
    tls(&mut o, &b.stats.tls);
    o.one(
        "read_buffer_bytes",
        "gauge",
        "Read buffers of broker-port connections, summed: each grows with its traffic and is released when the connection goes quiet (broker.buffer_release_ms).",
        s.read_buffer_bytes,
    );
    o.one(
        "memory_limit_bytes",
        "gauge",
        "The memory budget for buffered input and output (broker.memory_limit_bytes).",
        s.memory_limit_bytes,
    );
    o.one(
        "memory_in_use_bytes",
        "gauge",
        "Bytes charged to the memory budget now: read buffers, queued output, deliveries on their way, gateway streams.",
        s.memory_in_use_bytes,
    );
    o.one(
        "memory_peak_bytes",
        "gauge",
        "The most ever charged to the memory budget at once.",
        s.memory_peak_bytes,
    );
    o.one(
        "memory_output_bytes",
        "gauge",
        "Of the budget in use: queued output and deliveries on their way.",
        s.memory_output_bytes,
    );
    o.one(
        "memory_read_pauses_total",
        "counter",
        "Times a connection stopped reading because the memory budget was full.",
        s.memory_read_pauses,
    );
    o.one(
        "memory_shed_total",
        "counter",
        "Connections and streams closed as slow consumers to bring the memory budget under its limit.",
        s.memory_shed,
    );
    o.one(
        "stream_buffer_peak_bytes",
        "gauge",
        "The most any one SSE or gRPC stream has held for its client.",
        s.stream_buffer_peak_bytes,
    );
    o.one(
        "deliveries_total",
        "counter",
        "Topic records delivered to subscribers.",
        s.records_delivered,
    );
    o.one(
        "maze_events_total",
        "counter",
        "Follower-maze events applied.",
        s.maze_events,
    );
    o.one(
        "maze_notifications_total",
        "counter",
        "Follower-maze notifications sent.",
        s.maze_notifications,
    );
    if let Ok(topics) = b.list_topics().await {
        o.family(
            "partition_next_offset",
            "gauge",
            "The next offset of each partition (its end).",
        );
        for t in &topics {
            for (p, ps) in t.partitions.iter().enumerate() {
                o.sample(
                    "partition_next_offset",
                    &[("topic", &t.name), ("partition", &p.to_string())],
                    ps.next_offset,
                );
            }
        }
        o.family(
            "partition_start_offset",
            "gauge",
            "The oldest offset each partition still holds.",
        );
        for t in &topics {
            for (p, ps) in t.partitions.iter().enumerate() {
                o.sample(
                    "partition_start_offset",
                    &[("topic", &t.name), ("partition", &p.to_string())],
                    ps.start_offset,
                );
            }
        }
        o.family(
            "partition_size_bytes",
            "gauge",
            "Bytes on disk of each partition.",
        );
        for t in &topics {
            for (p, ps) in t.partitions.iter().enumerate() {
                o.sample(
                    "partition_size_bytes",
                    &[("topic", &t.name), ("partition", &p.to_string())],
                    ps.size_bytes,
                );
            }
        }
        type Of = fn(&crate::topic::PartitionStatus) -> u64;
        let storage: [(&str, &str, &str, Of); 3] = [
            (
                "partition_unhealthy",
                "gauge",
                "1 for a partition that is failed (log not opened) or unwritable (a storage fault being mended).",
                |ps| u64::from(ps.state != "ok"),
            ),
            (
                "partition_damaged_records",
                "gauge",
                "Offsets of each partition known to be unreadable (damaged or missing records).",
                |ps| ps.damaged.iter().map(|[a, b]| b - a + 1).sum(),
            ),
            (
                "partition_unreadable_reads_total",
                "counter",
                "Fetches and subscriptions that reached unreadable records.",
                |ps| ps.unreadable_reads,
            ),
        ];
        for (name, kind, help, of) in storage {
            o.family(name, kind, help);
            for t in &topics {
                for (p, ps) in t.partitions.iter().enumerate() {
                    o.sample(
                        name,
                        &[("topic", &t.name), ("partition", &p.to_string())],
                        of(ps),
                    );
                }
            }
        }
        o.family(
            "group_lag",
            "gauge",
            "Records a consumer group has not committed yet, per partition.",
        );
        for t in &topics {
            for (g, offsets) in &t.groups {
                for (p, c) in offsets {
                    let next = t.partitions.get(*p as usize).map_or(0, |ps| ps.next_offset);
                    let labels = [
                        ("group", g.as_str()),
                        ("topic", t.name.as_str()),
                        ("partition", &p.to_string()),
                    ];
                    o.sample("group_lag", &labels, next.saturating_sub(*c));
                }
            }
        }
    }
    if let Ok(d) = b.dedup_stats().await {
        super::dedup_metrics::write(&mut o, &d);
    }
    if let Ok(drivers) = b.list_drivers().await {
        o.family(
            "driver_up",
            "gauge",
            "1 for a driver that is alive, by driver and state.",
        );
        for d in &drivers {
            let up = u8::from(d.state.serving());
            o.sample(
                "driver_up",
                &[("driver", &d.name), ("state", d.state.as_str())],
                up,
            );
        }
        o.family(
            "driver_restarts_total",
            "counter",
            "Driver process restarts.",
        );
        for d in &drivers {
            o.sample("driver_restarts_total", &[("driver", &d.name)], d.restarts);
        }
        o.family(
            "driver_log_lines_dropped_total",
            "counter",
            "Driver log lines (stderr, fd 3) dropped over log_lines_per_sec.",
        );
        for d in &drivers {
            o.sample(
                "driver_log_lines_dropped_total",
                &[("driver", &d.name)],
                d.log_lines_dropped,
            );
        }
        o.family("driver_failed", "gauge", "1 for a driver given up.");
        for d in &drivers {
            o.sample(
                "driver_failed",
                &[("driver", &d.name)],
                u8::from(d.state == DriverState::Failed),
            );
        }
    }
    if let Ok(services) = b.list_services().await {
        super::service_metrics::write(&mut o, &services);
    }
    let host = b.drivers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(h) = host {
        if let Ok(st) = h.send(GetHostStats).await {
            let r = &st.rpc;
            o.one("rpc_calls_total", "counter", "RPC calls routed.", r.calls);
            o.one(
                "rpc_errors_total",
                "counter",
                "RPC returns with an error.",
                r.errors,
            );
            o.one(
                "rpc_timeouts_total",
                "counter",
                "RPC calls answered by their deadline.",
                r.timeouts,
            );
            o.one(
                "rpc_unroutable_total",
                "counter",
                "RPC calls to a feature that was not there.",
                r.unroutable,
            );
            o.one(
                "rpc_late_returns_total",
                "counter",
                "RPC returns for no call in flight (late or unknown), dropped.",
                r.late_returns,
            );
            o.one(
                "rpc_forged_returns_total",
                "counter",
                "RPC returns from a feature the call was not routed to, dropped.",
                r.forged_returns,
            );
            o.family(
                "rpc_latency_seconds",
                "histogram",
                "Latency of completed RPC calls.",
            );
            let mut cum = 0;
            for (i, bound) in LATENCY_BOUNDS_S.iter().enumerate() {
                cum += r.latency_buckets[i];
                o.sample(
                    "rpc_latency_seconds_bucket",
                    &[("le", &bound.to_string())],
                    cum,
                );
            }
            cum += r.latency_buckets[LATENCY_BOUNDS_S.len()];
            o.sample("rpc_latency_seconds_bucket", &[("le", "+Inf")], cum);
            o.sample(
                "rpc_latency_seconds_sum",
                &[],
                r.latency_us_total as f64 / 1e6,
            );
            o.sample("rpc_latency_seconds_count", &[], cum);
            o.one(
                "eventbus_events_total",
                "counter",
                "Event-bus messages from drivers and clients.",
                st.bus.events,
            );
            o.one(
                "eventbus_rule_matches_total",
                "counter",
                "Rules that matched an event.",
                st.bus.rule_matches,
            );
        }
    }
    o.0
}
