//! A driver runtime that behaves like the reference Go library (`honeydipper/dipper`):
//! states, options (with `:regex:` leaves and `ENC[…]`/`LOOKUP[…]` decryption by RPC),
//! start/reload/stop, the RPC provider and caller, and the command provider with
//! retry, back-off and timeout. Every message is handled on its own thread, as the
//! library handles each in its own goroutine.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use switchyard_codecs::Envelope;

use switchyard_actors::drivers::rpc::parse_go_duration;

use crate::wire::Writer;

/// What a handler answers: a payload, or an error reason.
pub type Reply = Result<Bytes, String>;
pub type Handler = fn(&Arc<Driver>, &Envelope) -> Reply;

/// The part that differs between driver kinds.
pub struct Behaviour {
    pub rpc: HashMap<&'static str, Handler>,
    pub commands: HashMap<&'static str, Handler>,
    pub has_reload: bool,
    /// Runs on the first `command start`, before `state alive`; `false` means no alive.
    pub on_start: fn(&Arc<Driver>) -> bool,
}

pub struct Driver {
    pub name: String,
    pub service: String,
    pub out: Writer,
    pub behaviour: Behaviour,
    state: Mutex<String>,
    options: Mutex<Option<Value>>,
    ready: (Mutex<bool>, Condvar),
    calls: Mutex<HashMap<String, mpsc::Sender<Envelope>>>,
    next_id: AtomicU64,
    log3: Option<Mutex<std::fs::File>>,
}

pub const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";

impl Driver {
    pub fn new(name: &str, service: &str, behaviour: Behaviour, out: Writer) -> Arc<Driver> {
        // fd 3 is the daemon's INFO log sink; opening /dev/fd/3 needs no unsafe code.
        let log3 = std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/fd/3")
            .ok()
            .map(Mutex::new);
        Arc::new(Driver {
            name: name.to_string(),
            service: service.to_string(),
            out,
            behaviour,
            state: Mutex::new("loaded".into()),
            options: Mutex::new(None),
            ready: (Mutex::new(false), Condvar::new()),
            calls: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            log3,
        })
    }

    /// `HH:MM:SS.mmm <name>.<func> ▶ LEVL 0xx msg`: WARNING and above on stderr, the rest on fd 3.
    pub fn log(&self, level: &str, func: &str, msg: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let (s, ms) = (now.as_secs() % 86_400, now.subsec_millis());
        let line = format!(
            "{:02}:{:02}:{:02}.{ms:03} {}.{func} ▶ {level} 001 {msg}\n",
            s / 3600,
            s / 60 % 60,
            s % 60,
            self.name
        );
        if matches!(level, "WARN" | "ERRO" | "CRIT") {
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else if let Some(f) = &self.log3 {
            let _ = f
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(line.as_bytes());
        }
    }

    pub fn state(&self) -> String {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_state(&self, s: &str) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s.to_string();
    }

    pub fn send_state(&self, s: &str) {
        self.set_state(s);
        self.out.send(&Envelope::new("state", s.to_string()));
    }

    pub fn options(&self) -> Option<Value> {
        self.options
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Dispatches one message on its own thread.
    pub fn dispatch(self: &Arc<Self>, env: Envelope) {
        let me = self.clone();
        std::thread::spawn(move || me.handle(env));
    }

    fn handle(self: &Arc<Self>, env: Envelope) {
        match (&*env.channel, &*env.subject) {
            ("command", "options") => self.on_options(&env),
            ("command", "start") => self.on_start(),
            ("command", "stop") => {
                self.send_state("stopped");
            }
            ("command", "ping") => self.out.send(&Envelope::new("state", self.state())),
            ("rpc", "call") => self.on_rpc_call(&env),
            ("rpc", "return") => {
                let id = env.labels.get_str("rpcID").unwrap_or("").to_string();
                let waiter = self
                    .calls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                if let Some(w) = waiter {
                    let _ = w.send(env);
                }
            }
            ("eventbus", "command") => self.on_command(&env),
            (c, s) => self.log(
                "INFO",
                "Run",
                &format!("skipping message without handler: {c}:{s}"),
            ),
        }
    }

    fn on_options(self: &Arc<Self>, env: &Envelope) {
        let mut v: Value = match serde_json::from_slice(&env.payload) {
            Ok(v) => v,
            Err(e) => {
                // The library's handler panics here; ready is never signalled.
                self.log("WARN", "Run", &format!("panic in command:options: {e}"));
                return;
            }
        };
        compile_regex_leaves(self, &mut v, false);
        self.decrypt_all(&mut v);
        *self.options.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
        let (lock, cv) = &self.ready;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    fn on_start(self: &Arc<Self>) {
        let (lock, cv) = &self.ready;
        let mut ready = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*ready {
            ready = cv.wait(ready).unwrap_or_else(|p| p.into_inner());
        }
        drop(ready);
        if self.state() == "alive" {
            if self.behaviour.has_reload {
                self.send_state("alive");
            } else {
                self.send_state("cold");
            }
        } else if (self.behaviour.on_start)(self) {
            self.send_state("alive");
        }
    }

    fn on_rpc_call(self: &Arc<Self>, env: &Envelope) {
        let id = env.labels.get_str("rpcID").unwrap_or("").to_string();
        let method = env.labels.get_str("method").unwrap_or("").to_string();
        let timeout = match env.labels.get_str("timeout") {
            None => Duration::from_secs(10),
            Some(t) => match parse_go_duration(t) {
                Some(d) => d,
                None => {
                    self.log(
                        "WARN",
                        "RPCProvider",
                        &format!("panic: invalid timeout {t}"),
                    );
                    return;
                }
            },
        };
        let handler = self.behaviour.rpc.get(method.as_str()).copied();
        let result = run_with_timeout(self, env, handler, timeout);
        if id == "skip" {
            return;
        }
        let mut ret = Envelope::new("rpc", "return")
            .with_label("rpcID", id)
            .with_label(
                "caller",
                env.labels.get("caller").cloned().unwrap_or_default(),
            );
        match result {
            Ok(p) => ret = ret.with_payload(p),
            Err(e) => ret = ret.with_label("error", e),
        }
        self.out.send(&ret);
    }

    fn on_command(self: &Arc<Self>, env: &Envelope) {
        let method = env.labels.get_str("method").unwrap_or("").to_string();
        let retry: u64 = env
            .labels
            .get_str("retry")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let mut backoff = env
            .labels
            .get_str("backoff_ms")
            .and_then(|r| r.parse().ok())
            .unwrap_or(1000u64);
        let timeout = env
            .labels
            .get_str("timeout")
            .and_then(|r| r.parse().ok())
            .unwrap_or(30u64);
        let (status, reason, payload) = match self.behaviour.commands.get(method.as_str()) {
            None => (
                "error",
                Some(format!("[operator] cmd not defined: {method}")),
                Bytes::new(),
            ),
            Some(&h) => {
                let mut attempt = 0;
                loop {
                    match run_with_timeout(self, env, Some(h), Duration::from_secs(timeout)) {
                        Ok(p) => break ("success", None, p),
                        Err(e) if e == "timeout" => break ("error", Some(e), Bytes::new()),
                        Err(e) if attempt >= retry => break ("failure", Some(e), Bytes::new()),
                        Err(_) => {
                            attempt += 1;
                            std::thread::sleep(Duration::from_millis(backoff));
                            backoff *= 2;
                        }
                    }
                }
            }
        };
        if env.labels.get("sessionID").is_none() {
            return;
        }
        let mut ret = Envelope::new("eventbus", "return").with_payload(payload);
        for (n, v) in env.labels.iter() {
            if !matches!(n, "retry" | "backoff_ms" | "timeout") {
                ret = ret.with_label(n.to_string(), v.clone());
            }
        }
        ret = ret.with_label("status", status);
        if let Some(r) = reason {
            ret = ret.with_label("reason", r);
        }
        self.out.send(&ret);
    }

    /// A synchronous RPC, as `driver.CallRaw`: 10 s, then `timeout`.
    pub fn call(&self, feature: &str, method: &str, params: Bytes) -> Result<Bytes, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, rx) = mpsc::channel();
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), tx);
        self.out.send(
            &Envelope::new("rpc", "call")
                .with_label("feature", feature.to_string())
                .with_label("method", method.to_string())
                .with_label("caller", "-")
                .with_label("rpcID", id.clone())
                .with_payload(params),
        );
        let ret = rx.recv_timeout(Duration::from_secs(10));
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        match ret {
            Err(_) => Err("timeout".into()),
            Ok(env) => match env.labels.get_str("error") {
                Some(e) => Err(format!("rpc error: reason: {e}")),
                None => Ok(env.payload),
            },
        }
    }

    /// `driver.EmitEvent`: an `eventbus message` with a fresh `eventID`.
    pub fn emit(&self, payload: Bytes) {
        self.out.send(
            &Envelope::new("eventbus", "message")
                .with_label("eventID", uuid4())
                .with_payload(payload),
        );
    }

    /// Walks the options and resolves `ENC[drv,base64]` and `LOOKUP[drv,key]` leaves by RPC.
    fn decrypt_all(&self, v: &mut Value) {
        match v {
            Value::Object(m) => m.values_mut().for_each(|x| self.decrypt_all(x)),
            Value::Array(a) => a.iter_mut().for_each(|x| self.decrypt_all(x)),
            Value::String(s) => {
                for (prefix, method) in [("ENC[", "decrypt"), ("LOOKUP[", "lookup")] {
                    let Some(inner) = s.strip_prefix(prefix).and_then(|r| r.strip_suffix(']'))
                    else {
                        continue;
                    };
                    let Some((drv, arg)) = inner.split_once(',') else {
                        continue;
                    };
                    if drv == "deferred" {
                        *s = format!("{prefix}{arg}]");
                        return;
                    }
                    let raw = if method == "decrypt" {
                        match base64_decode(arg) {
                            Some(b) => b,
                            None => return,
                        }
                    } else {
                        arg.as_bytes().to_vec()
                    };
                    match self.call(&format!("driver:{drv}"), method, Bytes::from(raw)) {
                        Ok(p) => *s = String::from_utf8_lossy(&p).into_owned(),
                        Err(e) => self.log("WARN", "DecryptAll", &format!("{method} failed: {e}")),
                    }
                    return;
                }
            }
            _ => {}
        }
    }
}

/// Runs a handler on its own thread and waits up to `timeout` for it.
fn run_with_timeout(
    d: &Arc<Driver>,
    env: &Envelope,
    handler: Option<Handler>,
    timeout: Duration,
) -> Reply {
    let Some(h) = handler else {
        return Err(NIL_DEREF.into());
    };
    let (tx, rx) = mpsc::channel();
    let (d2, e2) = (d.clone(), env.clone());
    std::thread::spawn(move || {
        let _ = tx.send(h(&d2, &e2));
    });
    rx.recv_timeout(timeout)
        .unwrap_or_else(|_| Err("timeout".into()))
}

/// `:regex:` leaves inside a map or list become compiled patterns, echoed as `{}`;
/// an invalid pattern stays the literal string, with a warning.
fn compile_regex_leaves(d: &Driver, v: &mut Value, inside: bool) {
    match v {
        Value::Object(m) => m
            .values_mut()
            .for_each(|x| compile_regex_leaves(d, x, true)),
        Value::Array(a) => a.iter_mut().for_each(|x| compile_regex_leaves(d, x, true)),
        Value::String(s) if inside => {
            if let Some(p) = s.strip_prefix(":regex:") {
                match regex::Regex::new(p) {
                    Ok(_) => *v = Value::Object(Default::default()),
                    Err(e) => d.log("WARN", "RegexParser", &format!("invalid regex {p}: {e}")),
                }
            }
        }
        _ => {}
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn uuid4() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b[6] = b[6] & 0x0f | 0x40;
    b[8] = b[8] & 0x3f | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
