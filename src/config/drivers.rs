//! `[drivers]`, `[[driver]]` and `[[rule]]`: the driver processes the broker hosts and
//! the event-bus rules between them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_actors::drivers::conditions::invalid_patterns;
use switchyard_actors::drivers::{DriverLogLimits, DriverSpec, HostSettings, RuleSpec};

use super::error::{at_table, ConfigError};
use super::{Config, Ranged};

/// `[drivers]`: what applies to every driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriversConfig {
    /// Caller-side RPC timeout when a call has no `timeout` label.
    pub rpc_timeout_ms: Ranged<1, 3_600_000>,
    /// How long a stopping driver has to answer `command stop` with `state stopped`.
    pub stop_wait_ms: Ranged<0, 60_000>,
    /// After stdin is closed: this long, then SIGTERM; this long again, then SIGKILL.
    pub kill_grace_ms: Ranged<1, 60_000>,
    /// Frames queued for one driver's stdin; past it, calls to it fail at once.
    pub queue_frames: Ranged<1, 1_000_000>,
    /// Bytes queued for one driver's stdin (and held for it while it starts); past it,
    /// calls to it fail at once. `[[driver]] queue_bytes` overrides it.
    pub queue_bytes: Ranged<4096, { 1 << 40 }>,
    /// A driver's log lines (stderr and fd 3) per second, on average; the rest are
    /// dropped and counted.
    pub log_lines_per_sec: Ranged<1, 1_000_000>,
    /// Log lines a driver may write at once before the rate applies.
    pub log_burst: Ranged<1, 1_000_000>,
    /// The longest log line kept; the rest of a longer line is cut.
    pub log_line_bytes: Ranged<64, { 1 << 20 }>,
    /// Driver events are appended to this topic; "" turns that off.
    pub eventbus_topic: String,
    /// The most `max_inflight` a named service's instance may ask for in `rpc register`.
    pub service_max_inflight: Ranged<1, 65_536>,
}

impl Default for DriversConfig {
    fn default() -> Self {
        DriversConfig {
            rpc_timeout_ms: Ranged::new(10_000),
            stop_wait_ms: Ranged::new(1_000),
            kill_grace_ms: Ranged::new(1_000),
            queue_frames: Ranged::new(1024),
            queue_bytes: Ranged::new(16 << 20),
            log_lines_per_sec: Ranged::new(100),
            log_burst: Ranged::new(200),
            log_line_bytes: Ranged::new(4096),
            eventbus_topic: "eventbus".into(),
            service_max_inflight: Ranged::new(4096),
        }
    }
}

fn operator() -> String {
    "operator".into()
}

fn start_timeout() -> Ranged<1, 3_600_000> {
    Ranged::new(10_000)
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// One `[[driver]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverConfig {
    /// Its feature is `driver:<name>`.
    pub name: String,
    /// The executable; argv is `[command, service, args...]`. None for a remote driver.
    #[serde(default)]
    pub command: PathBuf,
    #[serde(default = "operator")]
    pub service: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default = "start_timeout")]
    pub start_timeout_ms: Ranged<1, 3_600_000>,
    /// Sent as `data` in `command options`.
    #[serde(default = "empty_object")]
    pub options: Value,
    /// Overrides `[drivers] queue_bytes` for this driver.
    #[serde(default)]
    pub queue_bytes: Option<Ranged<4096, { 1 << 40 }>>,
    /// Not spawned: the driver connects to the broker port and says `driver hello`.
    #[serde(default)]
    pub remote: bool,
}

/// `when` of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenConfig {
    pub driver: String,
    /// The raw event name: the rule listens for `<driver>.<event>`.
    #[serde(default)]
    pub event: String,
    #[serde(rename = "match", default)]
    pub criteria: Value,
}

fn backoff() -> u64 {
    1000
}

fn no_retry() -> Ranged<0, 100> {
    Ranged::new(0)
}

fn timeout_s() -> u64 {
    30
}

/// `do` of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoConfig {
    pub driver: String,
    pub method: String,
    #[serde(default = "empty_object")]
    pub params: Value,
    #[serde(default = "no_retry")]
    pub retry: Ranged<0, 100>,
    #[serde(default = "backoff")]
    pub backoff_ms: u64,
    #[serde(default = "timeout_s")]
    pub timeout_s: u64,
}

/// One `[[rule]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    pub when: WhenConfig,
    #[serde(rename = "do")]
    pub action: DoConfig,
}

/// A word that can travel as one token of an envelope (feature names, methods).
fn token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
}

/// The configured drivers for an error about a name that is not one of them:
/// `known: a, b`, or that there are none at all.
pub(super) fn known_drivers<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    match names.is_empty() {
        true => "no [[driver]] is configured".to_string(),
        false => format!("known: {}", names.join(", ")),
    }
}

/// An error about `key` in the `index`-th `[[section]]`, at its line.
pub(super) fn at_entry(
    text: &str,
    file: &str,
    section: &str,
    index: usize,
    key: &str,
    message: String,
) -> ConfigError {
    at_table(text, file, &format!("{section}[{index}]"), key, message)
}

impl Config {
    /// Rules between drivers and rules: unique names, known drivers, patterns that compile.
    pub(super) fn validate_drivers(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let mut names = BTreeSet::new();
        for (i, d) in self.driver.iter().enumerate() {
            let err = |key: &str, m: String| at_entry(text, file, "driver", i, key, m);
            if !token(&d.name) || d.name.contains(':') {
                return Err(err(
                    "name",
                    format!(
                        "expected 1 to 128 characters without spaces or `:`, got `{}`",
                        d.name
                    ),
                ));
            }
            if !names.insert(d.name.as_str()) {
                return Err(err(
                    "name",
                    format!("driver `{}` is configured twice", d.name),
                ));
            }
            if d.remote {
                if !d.command.as_os_str().is_empty() {
                    return Err(err(
                        "remote",
                        format!(
                            "a remote driver connects to the broker and has no `command`, got command `{}`",
                            d.command.display()
                        ),
                    ));
                }
                if !d.args.is_empty() {
                    return Err(err(
                        "remote",
                        "a remote driver connects to the broker and has no `args`".into(),
                    ));
                }
            } else if d.command.as_os_str().is_empty() {
                return Err(err(
                    "command",
                    "expected the path of an executable (or `remote = true` for a driver that connects over TCP), got none".into(),
                ));
            } else if let Some(why) = super::command::unrunnable(&d.command) {
                return Err(err(
                    "command",
                    format!("expected an executable file: {why}"),
                ));
            }
            if !token(&d.service) {
                return Err(err(
                    "service",
                    format!("expected one word, got `{}`", d.service),
                ));
            }
        }
        let mut rules = BTreeSet::new();
        for (i, r) in self.rule.iter().enumerate() {
            let err = |key: &str, m: String| at_entry(text, file, "rule", i, key, m);
            if !rules.insert(r.name.as_str()) || r.name.is_empty() {
                return Err(err(
                    "name",
                    format!("expected a unique rule name, got `{}`", r.name),
                ));
            }
            if !token(&r.when.driver) {
                return Err(err(
                    "when",
                    format!(
                        "expected when.driver to name a driver, got `{}`",
                        r.when.driver
                    ),
                ));
            }
            if !names.contains(r.action.driver.as_str()) {
                return Err(err(
                    "do",
                    format!(
                        "do.driver `{}` is not a configured driver ({})",
                        r.action.driver,
                        known_drivers(names.iter().copied())
                    ),
                ));
            }
            if !token(&r.action.method) {
                return Err(err(
                    "do",
                    format!(
                        "expected do.method to be one word, got `{}`",
                        r.action.method
                    ),
                ));
            }
            if let Some((p, e)) = invalid_patterns(&r.when.criteria).into_iter().next() {
                return Err(err("when", format!("`:regex:{p}` does not compile: {e}")));
            }
        }
        Ok(())
    }

    /// What the driver host is told.
    pub fn host_settings(&self) -> HostSettings {
        let d = &self.drivers;
        HostSettings {
            drivers: self
                .driver
                .iter()
                .map(|c| DriverSpec {
                    name: c.name.clone(),
                    command: c.command.clone(),
                    service: c.service.clone(),
                    args: c.args.clone(),
                    required: c.required,
                    start_timeout: Duration::from_millis(c.start_timeout_ms.get()),
                    options: c.options.clone(),
                    queue_bytes: c.queue_bytes.unwrap_or(d.queue_bytes).usize(),
                    remote: c.remote,
                })
                .collect(),
            rules: self
                .rule
                .iter()
                .map(|r| RuleSpec {
                    name: r.name.clone(),
                    when_driver: r.when.driver.clone(),
                    when_event: r.when.event.clone(),
                    when_match: r.when.criteria.clone(),
                    do_driver: r.action.driver.clone(),
                    do_method: r.action.method.clone(),
                    do_params: r.action.params.clone(),
                    retry: r.action.retry.get() as u32,
                    backoff_ms: r.action.backoff_ms,
                    timeout_s: r.action.timeout_s,
                })
                .collect(),
            rpc_timeout: Duration::from_millis(d.rpc_timeout_ms.get()),
            stop_wait: Duration::from_millis(d.stop_wait_ms.get()),
            kill_grace: Duration::from_millis(d.kill_grace_ms.get()),
            queue_frames: d.queue_frames.usize(),
            log: DriverLogLimits {
                lines_per_sec: d.log_lines_per_sec.get() as u32,
                burst: d.log_burst.get() as u32,
                line_bytes: d.log_line_bytes.usize(),
            },
            limits: self.limits(),
            policy: self.restart_policy(),
            eventbus_topic: (!d.eventbus_topic.is_empty()).then(|| d.eventbus_topic.clone()),
            service_max_inflight: d.service_max_inflight.get() as u32,
        }
    }
}
