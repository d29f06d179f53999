//! Chat-ops through the real broker: a TCP client plays the adapter (it sends
//! `chat ingress`, reads `chat egress` and answers `is_trusted`), plugins are real
//! driver processes. Detection edge cases, arguments and usage, replies in order,
//! unknown commands, help and admin commands by trust, duplicate and bad manifests, a
//! crashing and a slow plugin, flood control and line splitting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::drivers::*;
use common::Log;
use serde_json::Value;
use switchyard::Broker;
use switchyard_codecs::Envelope;

/// The test's side of a TCP adapter named `irc`.
struct Adapter {
    tcp: Tcp,
    /// Users (full `nick!user@host`) this adapter says are trusted.
    trusted: Vec<String>,
    /// `is_trusted` calls seen: their payloads.
    asked: Vec<Value>,
}

impl Adapter {
    async fn connect(b: &Broker) -> Adapter {
        let mut tcp = Tcp::connect(b.local_addr()).await;
        tcp.send(&Envelope::new("chat", "register").with_label("adapter", "irc"))
            .await;
        let ok = tcp.next(Duration::from_secs(5)).await.unwrap();
        assert!(ok.is("chat", "registered"), "{ok:?}");
        Adapter {
            tcp,
            trusted: Vec::new(),
            asked: Vec::new(),
        }
    }

    async fn say_as(&mut self, nick: &str, text: &str) {
        let env = Envelope::new("chat", "ingress")
            .with_label("adapter", "irc")
            .with_label("room", "#ops")
            .with_label("user", format!("{nick}!{nick}@host.example"))
            .with_label("nick", nick.to_string())
            .with_payload(text.to_string());
        self.tcp.send(&env).await;
    }

    async fn say(&mut self, text: &str) {
        self.say_as("bob", text).await;
    }

    /// The next `n` reply lines (answering trust questions meanwhile), or fewer at the deadline.
    async fn replies(&mut self, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(e) = self.tcp.next(left).await else {
                break;
            };
            if e.is("chat", "egress") {
                assert_eq!(e.labels.get_str("room"), Some("#ops"));
                out.push(String::from_utf8(e.payload.to_vec()).unwrap());
            } else if e.is("rpc", "call") {
                assert_eq!(e.labels.get_str("method"), Some("is_trusted"));
                let v: Value = serde_json::from_slice(&e.payload).unwrap();
                let ok = self.trusted.iter().any(|t| v["user"] == t.as_str());
                self.asked.push(v);
                let ret = Envelope::new("rpc", "return")
                    .with_label("rpcID", e.labels.get("rpcID").unwrap().clone())
                    .with_label("caller", e.labels.get("caller").unwrap().clone())
                    .with_payload(if ok { "true" } else { "false" });
                self.tcp.send(&ret).await;
            }
        }
        out
    }

    async fn one(&mut self, text: &str) -> String {
        self.say(text).await;
        let r = self.replies(1, Duration::from_secs(10)).await;
        assert_eq!(r.len(), 1, "no reply to {text:?}");
        r.into_iter().next().unwrap()
    }

    async fn silent(&mut self, within: Duration) {
        let r = self.replies(1, within).await;
        assert!(r.is_empty(), "unexpected reply {r:?}");
    }
}

fn chat_config(
    dir: &std::path::Path,
    extra_chat: &str,
    plugins: &[(&str, &str)],
) -> switchyard::Config {
    let mut body = String::new();
    for (name, kind) in plugins {
        body += &driver(name, kind, "");
    }
    body += &format!(
        "[chat]\nadmins = [\"irc:alice!*@trusted.example\"]\n{extra_chat}\n\
         [[chat.adapter]]\nname = \"irc\"\ndriver = \"tcp\"\nrate = {{ burst = 100, per_second = 100.0 }}\n"
    );
    for (name, _) in plugins {
        body += &format!("[[chat.plugin]]\nname = \"{name}\"\ndriver = \"{name}\"\n");
    }
    config(dir, &body)
}

async fn ready(b: &Broker, commands: usize) {
    for _ in 0..500 {
        if b.chat_commands().await.len() >= commands {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("commands never registered: {:?}", b.chat_commands().await);
}

#[actix::test]
async fn detection_arguments_usage_replies_in_order_and_unknown() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&chat_config(dir.path(), "", &[("bacon", "chatplugin")]))
        .await
        .unwrap();
    ready(&b, 7).await;
    let mut a = Adapter::connect(&b).await;
    assert_eq!(
        a.one("!bacon").await,
        "gives bob a strip of delicious bacon."
    );
    assert_eq!(
        a.one("!bacon\tnelsk").await,
        "gives nelsk a strip of delicious bacon as a gift from bob"
    );
    assert_eq!(
        a.one("switchyard: bacon").await,
        "gives bob a strip of delicious bacon."
    );
    // The seed's false positives do not reach the bacon command.
    assert_eq!(
        a.one("!notbacon").await,
        "unknown command !notbacon; try !help"
    );
    assert_eq!(
        a.one("!foo bacon bar").await,
        "unknown command !foo; try !help"
    );
    // No pattern matches the whole rest: the usage line.
    assert_eq!(a.one("!bacon two words").await, "usage: !bacon [nick]");
    // Several replies, in order; arguments split shell-style.
    a.say("!echo one \"two three\" four").await;
    assert_eq!(
        a.replies(3, Duration::from_secs(10)).await,
        ["one", "two three", "four"]
    );
    // Not commands: a bare prefix, a prefix then a space, plain text, the bot's own line.
    for t in ["!", "! bacon", "bacon please", "hello !bacon"] {
        a.say(t).await;
    }
    a.say_as("switchyard", "!bacon").await;
    a.silent(Duration::from_millis(300)).await;
    let s = b.chat_stats().await.unwrap();
    assert_eq!(s.unknown, 2);
    assert_eq!(s.usage_replies, 1);
    b.run_until(async {}).await;
}

#[actix::test]
async fn help_and_admin_commands_follow_the_adapters_trust() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&chat_config(dir.path(), "", &[("bacon", "chatplugin")]))
        .await
        .unwrap();
    ready(&b, 7).await;
    let mut a = Adapter::connect(&b).await;
    a.trusted = vec!["alice!alice@host.example".into()];
    let help = a.one("!help").await;
    assert!(
        help.contains("!bacon") && !help.contains("!secret"),
        "{help}"
    );
    assert_eq!(
        a.one("!secret").await,
        "bob: you are not allowed to run secret (admins only)"
    );
    a.say_as("alice", "!help").await;
    let help = a.replies(1, Duration::from_secs(5)).await.remove(0);
    assert!(help.contains("!secret"), "{help}");
    a.say_as("alice", "!secret").await;
    assert_eq!(
        a.replies(1, Duration::from_secs(5)).await,
        ["the secret is 42"]
    );
    // The adapter was asked with the masks `chat.admins` gives it.
    assert_eq!(
        a.asked.last().unwrap()["admins"][0],
        "alice!*@trusted.example"
    );
    let lines = {
        a.say("!help bacon").await;
        a.replies(2, Duration::from_secs(5)).await
    };
    assert_eq!(
        lines,
        ["usage: !bacon [nick]", "gives bacon, to you or to nick"]
    );
    assert_eq!(b.chat_stats().await.unwrap().refused, 1);
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_duplicate_command_is_refused_and_a_bad_plugin_skipped() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let plugins = [
        ("bacon", "chatplugin"),
        ("dup", "chatdup"),
        ("bad", "chatbad"),
    ];
    let b = switchyard::start(&chat_config(dir.path(), "", &plugins))
        .await
        .unwrap();
    ready(&b, 8).await;
    // Manifests arrive in any order; either way `bacon` ends with the first plugin in
    // config order, and the conflict is logged.
    log.wait_for(&["command conflict", "command=bacon"]).await;
    log.wait_for(&[
        "plugin skipped: bad manifest",
        "plugin=bad",
        "does not compile",
    ])
    .await;
    let cmds = b.chat_commands().await;
    assert!(cmds.contains(&("bacon".into(), "bacon".into())));
    assert!(cmds.contains(&("dupe".into(), "dup".into())));
    assert!(!cmds.iter().any(|(c, _)| c == "broken"));
    let mut a = Adapter::connect(&b).await;
    assert_eq!(
        a.one("!bacon").await,
        "gives bob a strip of delicious bacon."
    );
    assert_eq!(a.one("!dupe").await, "dupe here");
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_crashing_plugin_is_restarted_and_a_slow_one_blocks_nobody() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&chat_config(
        dir.path(),
        "timeout_ms = 700",
        &[("bacon", "chatplugin"), ("dup", "chatdup")],
    ))
    .await
    .unwrap();
    ready(&b, 8).await;
    let mut a = Adapter::connect(&b).await;
    // Slow: the caller is told after the deadline; a command sent after it is answered first.
    a.say("!slow 3").await;
    a.say("!dupe").await;
    let r = a.replies(2, Duration::from_secs(5)).await;
    assert_eq!(r, ["dupe here", "slow: plugin bacon timed out after 0.7 s"]);
    // Crash: the caller is told, the plugin comes back, the other plugin never stopped.
    let t = Instant::now();
    let r = a.one("!crash").await;
    assert_eq!(r, "crash: plugin bacon is restarting, try again shortly");
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "told at once, not at the deadline"
    );
    assert_eq!(a.one("!dupe").await, "dupe here");
    wait_driver(&b, "bacon", 5, |s| s.alive_count == 2).await;
    ready(&b, 8).await;
    let mut answer = String::new();
    for _ in 0..50 {
        answer = a.one("!bacon").await;
        if !answer.contains("restarting") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer, "gives bob a strip of delicious bacon.");
    assert_eq!(wait_driver(&b, "dup", 1, |_| true).await.restarts, 0);
    b.run_until(async {}).await;
}

#[actix::test]
async fn flood_control_paces_and_long_replies_are_split_and_capped() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = chat_config(
        dir.path(),
        "reply_lines_max = 8",
        &[("bacon", "chatplugin")],
    );
    let chat = cfg.chat.as_mut().unwrap();
    chat.adapters[0].rate.burst = switchyard::config::Ranged::new(2);
    chat.adapters[0].rate.per_second = 5.0;
    chat.adapters[0].line_bytes = switchyard::config::Ranged::new(50);
    let b = switchyard::start(&cfg).await.unwrap();
    ready(&b, 7).await;
    let mut a = Adapter::connect(&b).await;
    let t = Instant::now();
    a.say("!lines 6").await;
    let lines = a.replies(6, Duration::from_secs(10)).await;
    let took = t.elapsed();
    assert_eq!(
        lines,
        ["line 1", "line 2", "line 3", "line 4", "line 5", "line 6"]
    );
    // Two at once, then one each 200 ms: at least 800 ms for the other four.
    assert!(took >= Duration::from_millis(780), "{took:?}");
    // 300 bytes of words, at most 50 bytes a line: 7 pieces that join back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.say("!long 300").await;
    let parts = a.replies(7, Duration::from_secs(10)).await;
    assert!(parts.iter().all(|p| p.len() <= 50), "{parts:?}");
    assert_eq!(parts.join(" "), "word ".repeat(60).trim_end());
    // Past reply_lines_max: cut, with a notice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.say("!lines 20").await;
    let lines = a.replies(8, Duration::from_secs(10)).await;
    assert_eq!(lines[6], "line 7");
    assert_eq!(lines[7], "… 13 more lines cut (chat.reply_lines_max = 8)");
    b.run_until(async {}).await;
}

#[actix::test]
async fn the_quotes_plugin_keeps_its_state_in_a_topic_across_restarts() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/drivers/quotes.sh");
    let body = format!(
        "[[driver]]\nname = \"quotes\"\ncommand = \"{script}\"\n\
         [chat]\n[[chat.adapter]]\nname = \"irc\"\ndriver = \"tcp\"\n\
         [[chat.plugin]]\nname = \"quotes\"\ndriver = \"quotes\"\n"
    );
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    ready(&b, 1).await;
    let mut a = Adapter::connect(&b).await;
    assert_eq!(
        a.one("!quote").await,
        "no quotes yet; add one with !quote add <text>"
    );
    assert_eq!(
        a.one("!quote add hello \"world\" | ok").await,
        "added quote #1"
    );
    assert_eq!(a.one("!quote add second").await, "added quote #2");
    assert_eq!(a.one("!quote 1").await, "#1: hello \"world\" | ok");
    b.run_until(async {}).await;
    // A new broker on the same storage: the plugin replays the topic.
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    ready(&b, 1).await;
    let mut a = Adapter::connect(&b).await;
    let mut got = String::new();
    for _ in 0..50 {
        got = a.one("!quote 2").await;
        if got != "no quotes yet; add one with !quote add <text>" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got, "#2: second");
    assert_eq!(a.one("!quote 1").await, "#1: hello \"world\" | ok");
    assert_eq!(a.one("!quote 3").await, "there are 2 quotes");
    b.run_until(async {}).await;
}
