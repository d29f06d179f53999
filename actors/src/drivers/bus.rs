//! The event bus: `eventbus message`s matched against the rules (`CompareAll` on the
//! event's `data`), the `eventbus command`s a match sends, the returns' counts, and the
//! TCP clients subscribed to every event.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use switchyard_codecs::Envelope;
use tracing::{debug, info, warn};

use super::conditions::{compare_all, Criteria};
use super::mapdata;
use super::spec::RuleSpec;

#[derive(Debug)]
struct Rule {
    spec: RuleSpec,
    key: String,
    criteria: Criteria,
}

/// Event bus counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BusStats {
    pub events: u64,
    pub rule_matches: u64,
    pub commands_sent: u64,
    /// Commands that could not be delivered (driver not alive, queue full).
    pub command_errors: u64,
    /// `eventbus return`s by `status`.
    pub returns: BTreeMap<String, u64>,
    /// Where the reference library would have panicked; counted as no match.
    pub condition_quirks: u64,
    pub delivered_to_clients: u64,
}

#[derive(Debug, Default)]
pub struct Bus {
    rules: Vec<Rule>,
    pub subscribers: BTreeSet<u64>,
    sessions: u64,
    pub stats: BusStats,
}

/// A command a matched rule sends.
#[derive(Debug, Clone)]
pub struct Command {
    pub rule: String,
    pub driver: String,
    pub env: Envelope,
}

impl Bus {
    pub fn new(rules: &[RuleSpec]) -> Self {
        let mut bus = Bus::default();
        bus.set_rules(rules);
        bus
    }

    pub fn set_rules(&mut self, rules: &[RuleSpec]) {
        self.rules = rules
            .iter()
            .map(|r| Rule {
                key: r.event_key(),
                criteria: Criteria::compile(&r.when_match),
                spec: r.clone(),
            })
            .collect();
    }

    /// Matches one event from `source` (a driver name, or `client:<id>`) against the
    /// rules; returns the commands to send.
    pub fn on_message(&mut self, source: &str, env: &Envelope) -> Vec<Command> {
        self.stats.events += 1;
        let body: Value = serde_json::from_slice(&env.payload).unwrap_or(Value::Null);
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        let names: Vec<String> = match body.get("events").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect(),
            None => vec![format!("{source}.")],
        };
        let event_id = env
            .labels
            .get_str("eventID")
            .map(str::to_string)
            .unwrap_or_else(|| format!("{source}-{}", self.stats.events));
        let mut labels = serde_json::Map::new();
        for (n, v) in env.labels.iter() {
            labels.insert(
                n.to_string(),
                Value::String(String::from_utf8_lossy(v).into()),
            );
        }
        let event = serde_json::json!({
            "driver": source, "events": names, "data": data, "labels": labels,
        });
        let mut out = Vec::new();
        for rule in &self.rules {
            if rule.spec.when_driver != source || !names.contains(&rule.key) {
                continue;
            }
            match compare_all(&data, &rule.criteria) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(q) => {
                    self.stats.condition_quirks += 1;
                    warn!(rule = %rule.spec.name, quirk = %q, "rule condition cannot be evaluated, no match");
                    continue;
                }
            }
            self.stats.rule_matches += 1;
            self.sessions += 1;
            let s = &rule.spec;
            let params = fill(&s.do_params, &event);
            let payload = serde_json::to_vec(&params).unwrap_or_default();
            info!(rule = %s.name, event_id = %event_id, driver = %s.do_driver, method = %s.do_method, "rule matched");
            out.push(Command {
                rule: s.name.clone(),
                driver: s.do_driver.clone(),
                env: Envelope::new("eventbus", "command")
                    .with_label("method", s.do_method.clone())
                    .with_label("sessionID", format!("{}-{}", s.name, self.sessions))
                    .with_label("eventID", event_id.clone())
                    .with_label("retry", s.retry.to_string())
                    .with_label("backoff_ms", s.backoff_ms.to_string())
                    .with_label("timeout", s.timeout_s.to_string())
                    .with_payload(Bytes::from(payload)),
            });
        }
        if out.is_empty() {
            debug!(source, events = ?names, "event matched no rule");
        }
        out
    }

    /// Logs and counts an `eventbus return`.
    pub fn on_return(&mut self, source: &str, env: &Envelope) {
        let status = env
            .labels
            .get_str("status")
            .unwrap_or("unknown")
            .to_string();
        let session = env.labels.get_str("sessionID").unwrap_or("");
        let reason = env.labels.get_str("reason").unwrap_or("");
        if status == "success" {
            info!(driver = source, session, status = %status, "command returned");
        } else {
            warn!(driver = source, session, status = %status, reason, "command returned");
        }
        *self.stats.returns.entry(status).or_default() += 1;
    }
}

/// Fills `${path}` in string leaves from the event (`data.…`, `labels.…`, `driver`,
/// `events.0`): a string that is exactly one `${path}` takes the value as it is; one
/// that embeds it takes its text. A path that finds nothing gives null / "".
pub fn fill(params: &Value, event: &Value) -> Value {
    match params {
        Value::String(s) => fill_str(s, event),
        Value::Array(a) => Value::Array(a.iter().map(|x| fill(x, event)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), fill(x, event))).collect())
        }
        other => other.clone(),
    }
}

fn fill_str(s: &str, event: &Value) -> Value {
    if let Some(path) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        if !path.contains("${") && !path.contains('}') {
            return mapdata::get(event, path).cloned().unwrap_or(Value::Null);
        }
    }
    if !s.contains("${") {
        return Value::String(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        match rest[i + 2..].find('}') {
            Some(j) => {
                let path = &rest[i + 2..i + 2 + j];
                match mapdata::get(event, path) {
                    Some(Value::String(v)) => out.push_str(v),
                    Some(v) => out.push_str(&v.to_string()),
                    None => {}
                }
                rest = &rest[i + 3 + j..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(name: &str, when: &str, m: Value) -> RuleSpec {
        RuleSpec {
            name: name.into(),
            when_driver: when.into(),
            when_event: String::new(),
            when_match: m,
            do_driver: "deployer".into(),
            do_method: "deploy".into(),
            do_params: json!({"env": "prod", "url": "${data.url}", "note": "from ${driver}"}),
            retry: 2,
            backoff_ms: 1000,
            timeout_s: 30,
        }
    }

    #[test]
    fn matching_rule_sends_a_labelled_command() {
        let mut bus = Bus::new(&[
            rule(
                "hook",
                "webhook",
                json!({"url": "/hook", "form": {"token": ":regex:^s3cr"}}),
            ),
            rule("other", "webhook", json!({"url": "/nope"})),
        ]);
        let env = Envelope::new("eventbus", "message")
            .with_label("eventID", "e1")
            .with_payload(
                &br#"{"events":["webhook."],"data":{"url":"/hook","form":{"token":"s3cret"}}}"#[..],
            );
        let cmds = bus.on_message("webhook", &env);
        assert_eq!(cmds.len(), 1);
        let c = &cmds[0].env;
        assert_eq!(c.labels.get_str("method"), Some("deploy"));
        assert_eq!(c.labels.get_str("eventID"), Some("e1"));
        assert_eq!(c.labels.get_str("retry"), Some("2"));
        assert_eq!(c.labels.get_str("backoff_ms"), Some("1000"));
        assert_eq!(c.labels.get_str("timeout"), Some("30"));
        assert!(c.labels.get_str("sessionID").is_some());
        let p: Value = serde_json::from_slice(&c.payload).unwrap();
        assert_eq!(
            p,
            json!({"env": "prod", "url": "/hook", "note": "from webhook"})
        );
        // Another source, or a token that does not match: nothing.
        assert!(bus.on_message("other", &env).is_empty());
        let bad = Envelope::new("eventbus", "message").with_payload(
            &br#"{"events":["webhook."],"data":{"url":"/hook","form":{"token":"nope"}}}"#[..],
        );
        assert!(bus.on_message("webhook", &bad).is_empty());
        assert_eq!(bus.stats.rule_matches, 1);
    }

    #[test]
    fn events_without_names_use_the_source_and_quirks_do_not_match() {
        let mut bus = Bus::new(&[
            rule("lines", "dummy", json!(null)),
            rule("q", "dummy", json!([])),
        ]);
        let env = Envelope::new("eventbus", "message")
            .with_payload(&br#"{"data":["line 1","line 2"]}"#[..]);
        let cmds = bus.on_message("dummy", &env);
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].rule, "lines");
        assert_eq!(bus.stats.condition_quirks, 1);
    }
}
