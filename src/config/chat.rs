//! `[chat]`, `[chat.console]`, `[[chat.adapter]]` and `[[chat.plugin]]`: chat-ops.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_actors::chat::{AdapterKind, AdapterSpec, ChatSettings, PluginSpec};

use super::drivers::at_entry;
use super::error::{at_key, ConfigError};
use super::{Config, Ranged};

/// `[chat]`; chat is off when the section is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// The bot's name: `<name>: cmd` addresses it; its own lines are ignored.
    pub name: String,
    pub prefix: String,
    /// `adapter:mask`, e.g. `irc:alice!*@trusted.example`.
    pub admins: Vec<String>,
    pub reply_lines_max: Ranged<1, 1000>,
    pub timeout_ms: Ranged<1, 3_600_000>,
    pub unknown_reply: bool,
    pub queue_lines: Ranged<1, 1_000_000>,
    pub console: ConsoleConfig,
    #[serde(rename = "adapter", skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<AdapterConfig>,
    #[serde(rename = "plugin", skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginConfig>,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            name: "switchyard".into(),
            prefix: "!".into(),
            admins: Vec::new(),
            reply_lines_max: Ranged::new(10),
            timeout_ms: Ranged::new(10_000),
            unknown_reply: true,
            queue_lines: Ranged::new(1000),
            console: ConsoleConfig::default(),
            adapters: Vec::new(),
            plugins: Vec::new(),
        }
    }
}

/// `[chat.console]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Read `<adapter> <text>` lines from stdin; print replies to stdout.
    pub enabled: bool,
}

/// `rate` of an adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub burst: Ranged<1, 10_000>,
    pub per_second: f64,
}

// `per_second` is validated finite, so equality is reflexive.
impl Eq for RateConfig {}

fn rate() -> RateConfig {
    RateConfig {
        burst: Ranged::new(4),
        per_second: 1.0,
    }
}

fn line_bytes() -> Ranged<16, 65_536> {
    Ranged::new(400)
}

/// One `[[chat.adapter]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    pub name: String,
    /// A driver name, `"console"`, or `"tcp"` (a broker-port client).
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default = "rate")]
    pub rate: RateConfig,
    #[serde(default = "line_bytes")]
    pub line_bytes: Ranged<16, 65_536>,
}

/// One `[[chat.plugin]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    pub driver: String,
}

impl Config {
    pub(super) fn validate_chat(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let Some(c) = &self.chat else { return Ok(()) };
        let drivers: BTreeSet<&str> = self.driver.iter().map(|d| d.name.as_str()).collect();
        let known = || super::drivers::known_drivers(drivers.iter().copied());
        if c.prefix.chars().any(char::is_whitespace) {
            return Err(at_key(
                text,
                file,
                "chat",
                "prefix",
                format!("expected no whitespace, got {:?}", c.prefix),
            ));
        }
        let mut names = BTreeSet::new();
        for (i, a) in c.adapters.iter().enumerate() {
            let err = |key: &str, m: String| at_entry(text, file, "chat.adapter", i, key, m);
            if a.name.is_empty()
                || a.name.contains(char::is_whitespace)
                || !names.insert(a.name.as_str())
            {
                return Err(err(
                    "name",
                    format!("expected a unique one-word adapter name, got `{}`", a.name),
                ));
            }
            if !matches!(a.driver.as_str(), "console" | "tcp")
                && !drivers.contains(a.driver.as_str())
            {
                return Err(err(
                    "driver",
                    format!(
                        "`{}` is not a configured driver, \"console\" or \"tcp\" ({})",
                        a.driver,
                        known()
                    ),
                ));
            }
            if !(a.rate.per_second >= 0.0 && a.rate.per_second.is_finite()) {
                return Err(err(
                    "rate",
                    format!("expected per_second >= 0, got {}", a.rate.per_second),
                ));
            }
        }
        let mut plugins = BTreeSet::new();
        for (i, p) in c.plugins.iter().enumerate() {
            let err = |key: &str, m: String| at_entry(text, file, "chat.plugin", i, key, m);
            if !plugins.insert(p.name.as_str()) || p.name.is_empty() {
                return Err(err(
                    "name",
                    format!("expected a unique plugin name, got `{}`", p.name),
                ));
            }
            if !drivers.contains(p.driver.as_str()) {
                return Err(err(
                    "driver",
                    format!("`{}` is not a configured driver ({})", p.driver, known()),
                ));
            }
        }
        for a in &c.admins {
            let ok = a
                .split_once(':')
                .is_some_and(|(ad, m)| !m.is_empty() && (ad == "console" || names.contains(ad)));
            if !ok {
                return Err(at_key(
                    text,
                    file,
                    "chat",
                    "admins",
                    format!("expected `<adapter>:<mask>` with a configured adapter, got `{a}`"),
                ));
            }
        }
        Ok(())
    }

    /// What the chat engine is told, when `[chat]` is present.
    pub fn chat_settings(&self) -> Option<ChatSettings> {
        let c = self.chat.as_ref()?;
        let mut adapters: Vec<AdapterSpec> = c
            .adapters
            .iter()
            .map(|a| AdapterSpec {
                name: a.name.clone(),
                kind: match a.driver.as_str() {
                    "console" => AdapterKind::Console,
                    "tcp" => AdapterKind::Tcp,
                    d => AdapterKind::Driver(d.to_string()),
                },
                prefix: a.prefix.clone(),
                burst: a.rate.burst.get() as u32,
                per_second: a.rate.per_second,
                line_bytes: a.line_bytes.usize(),
            })
            .collect();
        if c.console.enabled && !adapters.iter().any(|a| a.name == "console") {
            adapters.push(AdapterSpec {
                name: "console".into(),
                kind: AdapterKind::Console,
                prefix: None,
                burst: 1,
                per_second: 0.0,
                line_bytes: 4096,
            });
        }
        Some(ChatSettings {
            name: c.name.clone(),
            prefix: c.prefix.clone(),
            admins: c.admins.clone(),
            reply_lines_max: c.reply_lines_max.usize(),
            timeout: Duration::from_millis(c.timeout_ms.get()),
            unknown_reply: c.unknown_reply,
            queue_lines: c.queue_lines.usize(),
            adapters,
            plugins: c
                .plugins
                .iter()
                .map(|p| PluginSpec {
                    name: p.name.clone(),
                    driver: p.driver.clone(),
                })
                .collect(),
            console: c.console.enabled,
        })
    }
}
