//! What the configuration tells the driver host: one [`DriverSpec`] per `[[driver]]`,
//! one [`RuleSpec`] per `[[rule]]`, and the host-wide [`HostSettings`].

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use switchyard_codecs::Limits;

use crate::supervisor::RestartPolicy;

/// One `[[driver]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverSpec {
    pub name: String,
    pub command: PathBuf,
    /// `argv[1]`.
    pub service: String,
    pub args: Vec<String>,
    /// A required driver that cannot start aborts start-up.
    pub required: bool,
    /// The alive deadline, armed before `command start` is written.
    pub start_timeout: Duration,
    /// Sent as `data` in `command options`.
    pub options: Value,
    /// Bytes queued for its stdin, or held for it while it starts; past it, calls to
    /// it fail at once.
    pub queue_bytes: usize,
    /// No process: the driver connects to the broker port and says `driver hello`
    /// (`command` is empty).
    pub remote: bool,
}

impl DriverSpec {
    /// Its feature name: `driver:<name>`.
    pub fn feature(&self) -> String {
        format!("driver:{}", self.name)
    }

    /// Changing any of these needs a new process (a cold restart).
    pub fn same_process(&self, other: &DriverSpec) -> bool {
        self.remote == other.remote
            && self.command == other.command
            && self.service == other.service
            && self.args == other.args
    }
}

/// One `[[rule]]`: when an event from `when_driver` matches, send a command to `do_driver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub name: String,
    pub when_driver: String,
    /// The raw event name; the rule listens for `<when_driver>.<when_event>`.
    pub when_event: String,
    /// `CompareAll` criteria against the event's `data`.
    pub when_match: Value,
    pub do_driver: String,
    pub do_method: String,
    /// The command's payload; `${path}` strings are filled in from the event.
    pub do_params: Value,
    pub retry: u32,
    pub backoff_ms: u64,
    pub timeout_s: u64,
}

impl RuleSpec {
    /// The event name this rule listens for, as drivers list it in `events`.
    pub fn event_key(&self) -> String {
        format!("{}.{}", self.when_driver, self.when_event)
    }
}

/// Everything the host needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSettings {
    pub drivers: Vec<DriverSpec>,
    pub rules: Vec<RuleSpec>,
    /// The caller-side RPC timeout when a call has no `timeout` label.
    pub rpc_timeout: Duration,
    /// How long a stopping driver gets to answer `state stopped`.
    pub stop_wait: Duration,
    /// After stdin closes: wait this long, SIGTERM, wait again, SIGKILL.
    pub kill_grace: Duration,
    /// Frames queued for one driver's stdin; past it calls to the driver fail at once.
    pub queue_frames: usize,
    /// How much of a driver's stderr and fd 3 reaches the log.
    pub log: DriverLogLimits,
    /// Frame limits for what drivers write.
    pub limits: Limits,
    /// Process restarts: at most `max_restarts` within `within`, with back-off between
    /// failed starts.
    pub policy: RestartPolicy,
    /// Driver events are appended to this topic, when set and topics run.
    pub eventbus_topic: Option<String>,
    /// The most `max_inflight` a service instance may register with.
    pub service_max_inflight: u32,
}

/// A driver's log lines: a token bucket of `burst` lines refilled at `lines_per_sec`,
/// each line cut at `line_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverLogLimits {
    pub lines_per_sec: u32,
    pub burst: u32,
    pub line_bytes: usize,
}

impl Default for DriverLogLimits {
    fn default() -> Self {
        DriverLogLimits {
            lines_per_sec: 100,
            burst: 200,
            line_bytes: 4096,
        }
    }
}

impl HostSettings {
    /// The `dynamicData` a driver receives: `{"collapsedEvents": {"<event>": [{"match": …}]}}`
    /// built from the rules that name it in `when`, or null when none do.
    pub fn dynamic_data(&self, driver: &str) -> Value {
        let mut events = serde_json::Map::new();
        for r in self.rules.iter().filter(|r| r.when_driver == driver) {
            let list = events
                .entry(r.event_key())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = list {
                a.push(serde_json::json!({ "match": r.when_match }));
            }
        }
        if events.is_empty() {
            Value::Null
        } else {
            serde_json::json!({ "collapsedEvents": events })
        }
    }
}
