//! `switchyard-driver`: test and example drivers that speak the dipper protocol byte
//! for byte like drivers built on the reference Go library.
//!
//! argv is `[exe, service, kind]`, as the broker starts drivers. Kinds:
//! - `conformance` (default): the spec's conformance driver: RPC methods echo, fail,
//!   sleep, call, emit, exit, state, options, decrypt, lookup; commands echo, fail,
//!   sleep; a Reload hook.
//! - `dummy`: the upstream dummy driver: no Reload hook; as `receiver` it emits
//!   `{"data":["line 1","line 2"]}` `emit_after_ms` (default 20000) after start, then
//!   says `cold`.
//! - `crashloop`: says alive, then exits with code 2 after 200 ms.
//! - `silent`: never says alive and ignores the end of its input.
//! - `deaf`: `conformance` that answers its first RPC call and then never reads its
//!   input again (a driver whose stdin queue fills).
//! - `chatplugin`, `chatdup`, `chatbad`: chat plugins for the chat-ops tests (`chat`).
//!
//! With `--connect HOST:PORT --name NAME` (before the other arguments) it is a remote
//! driver: it connects to the broker port, says `driver hello` with `name` and
//! `service`, and speaks over the connection what it would on stdin and stdout. A
//! refused hello (`driver error`) ends it with code 3.
//!
//! Modules: `wire` (framing), `runtime` (the library's behaviour).

mod chat;
mod runtime;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use runtime::{Behaviour, Driver, Handler, Reply};
use std::io::{Read, Write};
use std::net::TcpStream;
use switchyard_codecs::Envelope;
use wire::{Input, Reader, Writer};

fn echo(_: &Arc<Driver>, m: &Envelope) -> Reply {
    Ok(m.payload.clone())
}

fn fail(_: &Arc<Driver>, _: &Envelope) -> Reply {
    Err("conformance failure".into())
}

fn field(m: &Envelope) -> serde_json::Value {
    serde_json::from_slice(&m.payload).unwrap_or(serde_json::Value::Null)
}

fn sleep(_: &Arc<Driver>, m: &Envelope) -> Reply {
    let secs = field(m)["seconds"].as_f64().unwrap_or(1.0);
    std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
    Ok(m.payload.clone())
}

fn call(d: &Arc<Driver>, m: &Envelope) -> Reply {
    let v = field(m);
    let feature = v["feature"].as_str().unwrap_or("").to_string();
    let method = v["method"].as_str().unwrap_or("").to_string();
    let params = serde_json::to_vec(&v["params"]).unwrap_or_default();
    d.call(&feature, &method, Bytes::from(params))
}

fn emit(d: &Arc<Driver>, m: &Envelope) -> Reply {
    d.emit(m.payload.clone());
    Ok(Bytes::new())
}

fn exit(d: &Arc<Driver>, m: &Envelope) -> Reply {
    let code = field(m)["code"].as_i64().unwrap_or(0) as i32;
    d.log(
        "WARN",
        "exit",
        &format!("exiting with code {code} on request"),
    );
    std::process::exit(code)
}

fn state(d: &Arc<Driver>, m: &Envelope) -> Reply {
    let s = field(m)["state"].as_str().unwrap_or("alive").to_string();
    d.send_state(&s);
    Ok(Bytes::new())
}

fn options(d: &Arc<Driver>, _: &Envelope) -> Reply {
    Ok(Bytes::from(
        serde_json::to_vec(&d.options()).unwrap_or_default(),
    ))
}

fn decrypt(_: &Arc<Driver>, m: &Envelope) -> Reply {
    Ok(Bytes::from([&b"decrypted:"[..], &m.payload].concat()))
}

fn lookup(_: &Arc<Driver>, m: &Envelope) -> Reply {
    Ok(Bytes::from([&b"looked-up:"[..], &m.payload].concat()))
}

fn conformance() -> Behaviour {
    let rpc: [(&'static str, Handler); 10] = [
        ("echo", echo),
        ("fail", fail),
        ("sleep", sleep),
        ("call", call),
        ("emit", emit),
        ("exit", exit),
        ("state", state),
        ("options", options),
        ("decrypt", decrypt),
        ("lookup", lookup),
    ];
    let commands: [(&'static str, Handler); 3] = [("echo", echo), ("fail", fail), ("sleep", sleep)];
    Behaviour {
        rpc: HashMap::from(rpc),
        commands: HashMap::from(commands),
        has_reload: true,
        on_start: |_| true,
    }
}

fn dummy_start(d: &Arc<Driver>) -> bool {
    if d.service == "receiver" {
        let after = d
            .options()
            .and_then(|o| o["data"]["emit_after_ms"].as_u64())
            .unwrap_or(20_000);
        let d = d.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(after));
            d.out.send(
                &Envelope::new("eventbus", "message")
                    .with_payload(&br#"{"data":["line 1","line 2"]}"#[..]),
            );
            d.send_state("cold");
        });
    }
    true
}

/// `--connect HOST:PORT --name NAME`: the connection (hello sent) as input and output.
fn remote(args: &mut Vec<String>) -> Option<(Box<dyn Read + Send>, Box<dyn Write + Send>)> {
    let at = args.iter().position(|a| a == "--connect")?;
    let addr = args.get(at + 1).cloned().unwrap_or_default();
    args.drain(at..(at + 2).min(args.len()));
    let name = match args.iter().position(|a| a == "--name") {
        Some(i) if i + 1 < args.len() => args.drain(i..i + 2).nth(1).unwrap_or_default(),
        _ => "conformance".into(),
    };
    let service = args.get(1).cloned().unwrap_or_else(|| "operator".into());
    let conn = match TcpStream::connect(&addr) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot connect to {addr}: {e}");
            std::process::exit(2);
        }
    };
    let _ = conn.set_nodelay(true);
    let (Ok(input), Ok(mut output)) = (conn.try_clone(), conn.try_clone()) else {
        eprintln!("cannot use the connection to {addr}");
        std::process::exit(2);
    };
    let hello = Envelope::new("driver", "hello")
        .with_label("name", name)
        .with_label("service", service);
    let mut buf = bytes::BytesMut::new();
    if hello.encode(&mut buf).is_err() || output.write_all(&buf).is_err() {
        eprintln!("cannot say hello to {addr}");
        std::process::exit(2);
    }
    Some((Box::new(input), Box::new(output)))
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let remote = remote(&mut args);
    let service = args.get(1).cloned().unwrap_or_else(|| "operator".into());
    let kind = args.get(2).cloned().unwrap_or_else(|| "conformance".into());
    let behaviour = match kind.as_str() {
        "conformance" => conformance(),
        "dummy" => Behaviour {
            rpc: HashMap::new(),
            commands: HashMap::new(),
            has_reload: false,
            on_start: dummy_start,
        },
        "crashloop" => Behaviour {
            on_start: |_| {
                std::thread::spawn(|| {
                    std::thread::sleep(Duration::from_millis(200));
                    std::process::exit(2);
                });
                true
            },
            ..conformance()
        },
        "deaf" => conformance(),
        "silent" => Behaviour {
            on_start: |_| false,
            ..conformance()
        },
        other => match chat::behaviour(other) {
            Some(b) => b,
            None => {
                eprintln!("unknown driver kind {other:?}: conformance, dummy, crashloop, silent, deaf, chatplugin, chatdup or chatbad");
                std::process::exit(2);
            }
        },
    };
    let (input, output): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match remote {
        Some(io) => io,
        None => (Box::new(std::io::stdin()), Box::new(std::io::stdout())),
    };
    let driver = Driver::new(&kind, &service, behaviour, Writer::new(output));
    driver.log(
        "INFO",
        "main",
        &format!("{kind} driver started as {service}"),
    );
    let mut reader = Reader::new(input);
    loop {
        match reader.next() {
            Input::Frame(env) if env.is("driver", "error") => {
                let why = env.labels.get_str("error").unwrap_or_default();
                driver.log(
                    "CRIT",
                    "Run",
                    &format!("the broker refused this driver: {why}"),
                );
                std::process::exit(3);
            }
            Input::Frame(env) => {
                // `deaf` answers its first call, then never reads stdin again.
                let stall = kind == "deaf" && env.channel == "rpc" && env.subject == "call";
                driver.dispatch(env);
                if stall {
                    loop {
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                }
            }
            Input::Invalid(e) => {
                driver.log("WARN", "Run", &format!("invalid message envelope: {e}"))
            }
            Input::Eof if kind == "silent" => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            Input::Eof => {
                driver.log("CRIT", "Run", "daemon closed channel");
                std::process::exit(1);
            }
        }
    }
}
