//! Replies on their way out: split below the adapter's line limit, capped at
//! `reply_lines_max`, paced per adapter by its token bucket (order kept, the queue
//! bounded by `queue_lines`), and sent as `chat egress`; console replies print to
//! stdout. Also the console's reader of `<adapter> <text>` lines from stdin.

use std::io::{BufRead, Write};
use std::time::Instant;

use actix::prelude::*;
use switchyard_codecs::Envelope;
use tracing::{debug, warn};

use super::egress::{cap_lines, split_lines, Bucket, Outbound};
use super::engine::{ChatEngine, Origin};
use super::{AdapterKind, ConsoleLine};
use crate::drivers::SendTo;

/// One outbound line.
#[derive(Debug, Clone)]
pub struct Line {
    pub room: String,
    pub thread: Option<String>,
    pub text: String,
}

/// Longest line the console prints in one piece.
const CONSOLE_LINE_BYTES: usize = 4096;

fn print_console(adapter: &str, lines: &[String]) {
    let mut out = std::io::stdout().lock();
    for l in lines {
        let _ = writeln!(out, "{adapter}: {l}");
    }
    let _ = out.flush();
}

impl ChatEngine {
    /// Sends `replies` to where `origin` came from, in order.
    pub(super) fn reply(&mut self, origin: &Origin, replies: Vec<String>, ctx: &mut Context<Self>) {
        let spec = self.settings.adapter(&origin.adapter).cloned();
        let console =
            origin.console || spec.as_ref().map(|s| &s.kind) == Some(&AdapterKind::Console);
        let line_bytes = match (&spec, console) {
            (_, true) => CONSOLE_LINE_BYTES,
            (Some(s), false) => s.line_bytes,
            (None, false) => return,
        };
        let lines: Vec<String> = replies
            .iter()
            .flat_map(|r| split_lines(r, line_bytes))
            .collect();
        let lines = cap_lines(lines, self.settings.reply_lines_max);
        if console {
            self.stats.lines_out += lines.len() as u64;
            return print_console(&origin.adapter, &lines);
        }
        let Some(spec) = spec else { return };
        let queue = self.settings.queue_lines;
        let out = self
            .out
            .entry(origin.adapter.clone())
            .or_insert_with(|| Outbound::new(Bucket::new(spec.burst, spec.per_second), queue));
        for text in lines {
            let line = Line {
                room: origin.room.clone(),
                thread: origin.thread.clone(),
                text,
            };
            if !out.push(line) {
                warn!(adapter = %origin.adapter, queue, "chat output queue full, line dropped");
            }
        }
        self.drain(origin.adapter.clone(), ctx);
    }

    /// Sends what the adapter's bucket allows now, and schedules the rest.
    fn drain(&mut self, adapter: String, ctx: &mut Context<Self>) {
        let Some(out) = self.out.get_mut(&adapter) else {
            return;
        };
        let (lines, wait) = out.due(Instant::now());
        if let Some(wait) = wait.filter(|_| !out.armed) {
            out.armed = true;
            let a = adapter.clone();
            ctx.run_later(wait, move |act, ctx| {
                if let Some(o) = act.out.get_mut(&a) {
                    o.armed = false;
                }
                act.drain(a, ctx);
            });
        }
        let feature = match self.settings.adapter(&adapter).map(|a| a.kind.clone()) {
            Some(AdapterKind::Driver(d)) => format!("driver:{d}"),
            Some(AdapterKind::Tcp) => match self.tcp.get(&adapter) {
                Some(f) => f.clone(),
                None => {
                    return warn!(adapter = %adapter, "tcp adapter not connected, reply dropped")
                }
            },
            Some(AdapterKind::Console) => {
                let texts: Vec<String> = lines.into_iter().map(|l| l.text).collect();
                self.stats.lines_out += texts.len() as u64;
                return print_console(&adapter, &texts);
            }
            None => return,
        };
        for l in lines {
            self.stats.lines_out += 1;
            let mut env = Envelope::new("chat", "egress")
                .with_label("adapter", adapter.clone())
                .with_label("room", l.room)
                .with_payload(l.text);
            if let Some(t) = l.thread {
                env = env.with_label("thread", t);
            }
            self.send_to(&feature, env);
        }
    }

    pub(super) fn send_to(&self, feature: &str, env: Envelope) {
        let Some(host) = self.host() else { return };
        if let Err(e) = host.try_send(SendTo {
            feature: feature.to_string(),
            env,
        }) {
            warn!(feature, error = %e, "chat frame not sent");
        }
    }
}

/// Reads `<adapter> <text>` lines from the broker's stdin for the console adapter.
///
/// A plain thread, not tokio's stdin: tokio reads stdin on its blocking pool, and a read
/// that never returns would hold up the runtime's shutdown. The channel is bounded, so a
/// flood of piped lines waits in the pipe.
pub(super) fn read_console(ctx: &mut Context<ChatEngine>) {
    let me = ctx.address();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
    let spawned = std::thread::Builder::new()
        .name("console-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(l) = line else { break };
                if tx.blocking_send(l).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        return warn!(error = %e, "console: cannot read stdin");
    }
    actix::spawn(async move {
        while let Some(l) = rx.recv().await {
            if me.send(ConsoleLine(l)).await.is_err() {
                break;
            }
        }
        debug!("console: end of stdin");
    });
}

impl Handler<ConsoleLine> for ChatEngine {
    type Result = ();

    fn handle(&mut self, ConsoleLine(line): ConsoleLine, ctx: &mut Self::Context) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let (adapter, text) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let known = adapter == "console" || self.settings.adapter(adapter).is_some();
        if !known {
            let mut names = vec!["console".to_string()];
            for a in &self.settings.adapters {
                if !names.contains(&a.name) {
                    names.push(a.name.clone());
                }
            }
            let msg = format!(
                "unknown adapter `{adapter}`: type `<adapter> <text>` with one of: {}",
                names.join(", ")
            );
            return print_console("console", &[msg]);
        }
        let origin = Origin {
            adapter: adapter.to_string(),
            room: "console".into(),
            thread: None,
            user: format!("{adapter}-user"),
            nick: format!("{adapter}-user"),
            console: true,
        };
        self.ingress(origin, text.trim(), ctx);
    }
}
