//! Chat plugin kinds for tests: `chatplugin` (bacon, echo, lines, long, slow, crash and
//! the admin-only secret), `chatdup` (claims `bacon` again) and `chatbad` (a pattern
//! that does not compile).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use switchyard_codecs::Envelope;

use crate::runtime::{Behaviour, Driver, Handler, Reply};

fn input(m: &Envelope) -> Value {
    serde_json::from_slice(&m.payload).unwrap_or(Value::Null)
}

fn replies(r: Vec<String>) -> Reply {
    Ok(Bytes::from(json!({ "replies": r }).to_string()))
}

fn manifest_of(commands: Value) -> Reply {
    Ok(Bytes::from(
        json!({"name": "test", "version": "1", "commands": commands}).to_string(),
    ))
}

fn manifest(_: &Arc<Driver>, _: &Envelope) -> Reply {
    manifest_of(json!([
        {"name": "bacon", "patterns": ["", "(?P<nick>\\S+)"], "usage": "!bacon [nick]",
         "help": "gives bacon, to you or to nick"},
        {"name": "echo", "patterns": [".*"], "usage": "!echo words...", "help": "each word back, in order"},
        {"name": "lines", "patterns": ["(?P<n>\\d+)"], "usage": "!lines <n>"},
        {"name": "long", "patterns": ["(?P<n>\\d+)"], "usage": "!long <bytes>"},
        {"name": "slow", "patterns": ["(?P<secs>\\d+)"], "usage": "!slow <seconds>"},
        {"name": "crash", "patterns": [""], "usage": "!crash"},
        {"name": "secret", "patterns": [""], "usage": "!secret", "help": "admins only", "admin": true}
    ]))
}

fn bacon(_: &Arc<Driver>, m: &Envelope) -> Reply {
    let v = input(m);
    let who = v["nick"].as_str().unwrap_or("someone");
    match v["args"]["nick"].as_str() {
        Some(n) => replies(vec![format!(
            "gives {n} a strip of delicious bacon as a gift from {who}"
        )]),
        None => replies(vec![format!("gives {who} a strip of delicious bacon.")]),
    }
}

fn echo(_: &Arc<Driver>, m: &Envelope) -> Reply {
    let argv = input(m)["argv"].as_array().cloned().unwrap_or_default();
    replies(
        argv.iter()
            .map(|a| a.as_str().unwrap_or("").to_string())
            .collect(),
    )
}

fn num(m: &Envelope, k: &str) -> usize {
    input(m)["args"][k]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn lines(_: &Arc<Driver>, m: &Envelope) -> Reply {
    replies((1..=num(m, "n")).map(|i| format!("line {i}")).collect())
}

fn long(_: &Arc<Driver>, m: &Envelope) -> Reply {
    let words = num(m, "n") / 5;
    replies(vec!["word ".repeat(words).trim_end().to_string()])
}

fn slow(_: &Arc<Driver>, m: &Envelope) -> Reply {
    std::thread::sleep(Duration::from_secs(num(m, "secs") as u64));
    replies(vec!["slept".into()])
}

fn crash(d: &Arc<Driver>, _: &Envelope) -> Reply {
    d.log("WARN", "crash", "crashing on request");
    std::process::exit(3)
}

fn secret(_: &Arc<Driver>, _: &Envelope) -> Reply {
    replies(vec!["the secret is 42".into()])
}

fn dup_manifest(_: &Arc<Driver>, _: &Envelope) -> Reply {
    manifest_of(json!([
        {"name": "bacon", "patterns": [""], "usage": "!bacon"},
        {"name": "dupe", "patterns": [""], "usage": "!dupe"}
    ]))
}

fn dupe(_: &Arc<Driver>, _: &Envelope) -> Reply {
    replies(vec!["dupe here".into()])
}

fn bad_manifest(_: &Arc<Driver>, _: &Envelope) -> Reply {
    manifest_of(json!([{"name": "broken", "patterns": ["(("]}]))
}

pub fn behaviour(kind: &str) -> Option<Behaviour> {
    let rpc: Vec<(&'static str, Handler)> = match kind {
        "chatplugin" => vec![
            ("manifest", manifest),
            ("bacon", bacon),
            ("echo", echo),
            ("lines", lines),
            ("long", long),
            ("slow", slow),
            ("crash", crash),
            ("secret", secret),
        ],
        "chatdup" => vec![("manifest", dup_manifest), ("bacon", dupe), ("dupe", dupe)],
        "chatbad" => vec![("manifest", bad_manifest)],
        _ => return None,
    };
    Some(Behaviour {
        rpc: rpc.into_iter().collect(),
        commands: HashMap::new(),
        has_reload: true,
        on_start: |_| true,
    })
}
