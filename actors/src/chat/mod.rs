//! Chat-ops: adapters bring chat lines in, `!command` lines go to plugins, replies go
//! back where they came from. Adapters and plugins are drivers (or TCP clients); the
//! [`ChatEngine`] actor routes between them through the driver host.
//!
//! Modules:
//! - [`engine`]: [`ChatEngine`]: ingress, commands, invocations, help, trust.
//! - [`outbound`]: replies to adapters: splitting, caps, pacing, the console's stdout.
//! - [`detect`]: command detection and the shell-style split of arguments.
//! - [`registry`]: plugin manifests and command ownership.
//! - [`egress`]: line splitting, the reply cap and the token bucket.

pub mod detect;
pub mod egress;
pub mod engine;
pub mod outbound;
pub mod registry;

use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;
use switchyard_codecs::Envelope;

pub use engine::{ChatEngine, ChatSlot};

/// How an adapter is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterKind {
    /// A driver speaking the `chat` channel.
    Driver(String),
    /// A TCP client of the broker port that sent `chat register` or `chat ingress`.
    Tcp,
    /// The broker's own stdin and stdout.
    Console,
}

/// One `[[chat.adapter]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSpec {
    pub name: String,
    pub kind: AdapterKind,
    /// Overrides `chat.prefix`.
    pub prefix: Option<String>,
    /// Outbound lines at once, and refilled per second (0: unpaced).
    pub burst: u32,
    pub per_second: f64,
    /// Longest outbound line in bytes; longer replies are split.
    pub line_bytes: usize,
}

/// One `[[chat.plugin]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    pub name: String,
    pub driver: String,
}

/// `[chat]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSettings {
    /// The bot's name: `name: cmd` addresses it, and its own lines are ignored.
    pub name: String,
    pub prefix: String,
    /// `adapter:mask` entries; each adapter decides what its masks mean.
    pub admins: Vec<String>,
    pub reply_lines_max: usize,
    pub timeout: Duration,
    /// Answer an unknown command (otherwise ignore it).
    pub unknown_reply: bool,
    /// Lines one adapter may have waiting for its rate; past it, lines are dropped.
    pub queue_lines: usize,
    pub adapters: Vec<AdapterSpec>,
    pub plugins: Vec<PluginSpec>,
    /// Read `<adapter> <text>` lines from stdin and print replies to stdout.
    pub console: bool,
}

impl ChatSettings {
    pub fn adapter(&self, name: &str) -> Option<&AdapterSpec> {
        self.adapters.iter().find(|a| a.name == name)
    }

    /// The masks `chat.admins` gives for `adapter`.
    pub fn admin_masks(&self, adapter: &str) -> Vec<String> {
        self.admins
            .iter()
            .filter_map(|a| a.split_once(':'))
            .filter(|(ad, _)| *ad == adapter)
            .map(|(_, m)| m.to_string())
            .collect()
    }
}

/// A `chat` frame from a driver or TCP client, forwarded by the driver host.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ChatFrame {
    /// `driver:<name>` or `client:<id>`.
    pub from: String,
    pub env: Envelope,
}

/// A line the console read from stdin.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ConsoleLine(pub String);

/// Chat counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, MessageResponse)]
pub struct ChatStats {
    pub ingress: u64,
    pub commands: u64,
    pub unknown: u64,
    pub usage_replies: u64,
    pub refused: u64,
    pub invocations: u64,
    pub plugin_errors: u64,
    pub timeouts: u64,
    pub lines_out: u64,
    pub lines_dropped: u64,
}

#[derive(Debug, Message)]
#[rtype(result = "ChatStats")]
pub struct GetChatStats;

/// Registered commands by name, with their plugin.
#[derive(Debug, Message)]
#[rtype(result = "Vec<(String, String)>")]
pub struct ListCommands;
