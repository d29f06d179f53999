//! Remote drivers: a broker-port client that says `driver hello` is hosted like a
//! spawned driver (options, start, alive, RPC both ways, eventbus commands, its events
//! through the rules), its disconnect is its crash, and it may come back. Names that
//! collide are refused; `remote = true` in the config is checked and declares one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::drivers::*;
use common::Log;
use serde_json::{json, Value};
use switchyard::Config;
use switchyard_actors::drivers::DriverState;
use switchyard_codecs::Envelope;

/// A spawned conformance driver `conf`, a declared remote driver `edge`, and rules
/// both ways between them.
fn body() -> String {
    format!(
        "{}[[driver]]\nname = \"edge\"\nremote = true\n[driver.options]\ngreeting = \"hi\"\n\
         [[rule]]\nname = \"edge-to-conf\"\nwhen = {{ driver = \"edge\", event = \"ping\" }}\n\
         do = {{ driver = \"conf\", method = \"echo\", params = {{ n = \"${{data.n}}\" }} }}\n\
         [[rule]]\nname = \"conf-to-edge\"\nwhen = {{ driver = \"conf\", event = \"go\" }}\n\
         do = {{ driver = \"edge\", method = \"log\", params = {{ x = \"${{data.x}}\" }} }}\n",
        driver("conf", "conformance", "")
    )
}

/// The next frame on `c` for which `f` holds (others are skipped), within 10 s.
async fn expect(c: &mut Tcp, what: &str, f: impl Fn(&Envelope) -> bool) -> Envelope {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(e) = c.next(Duration::from_millis(200)).await {
            if f(&e) {
                return e;
            }
        }
    }
    panic!("no {what} within 10 s");
}

fn hello(name: &str) -> Envelope {
    Envelope::new("driver", "hello")
        .with_label("name", name.to_string())
        .with_label("service", "receiver")
}

/// Says hello as `name`, checks options and start, answers alive; returns the options.
async fn become_driver(b: &switchyard::Broker, d: &mut Tcp, name: &str) -> Value {
    d.send(&hello(name)).await;
    let options = expect(d, "command options", |e| e.is("command", "options")).await;
    expect(d, "command start", |e| e.is("command", "start")).await;
    assert_eq!(
        wait_driver(b, name, 5, |_| true).await.state,
        DriverState::Starting
    );
    d.send(&Envelope::new("state", "alive")).await;
    wait_alive(b, name).await;
    serde_json::from_slice(&options.payload).unwrap()
}

fn call(id: &str, feature: &str, method: &str, payload: &[u8]) -> Envelope {
    Envelope::new("rpc", "call")
        .with_label("rpcID", id.to_string())
        .with_label("feature", feature.to_string())
        .with_label("method", method.to_string())
        .with_payload(payload.to_vec())
}

#[actix::test]
async fn a_remote_driver_through_its_whole_life() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &body()))
        .await
        .unwrap();
    wait_alive(&b, "conf").await;
    let s = wait_driver(&b, "edge", 5, |_| true).await;
    assert_eq!(
        (s.state, s.remote, s.peer),
        (DriverState::Disconnected, true, None)
    );
    let mut c = Tcp::connect(b.local_addr()).await;
    // Not connected yet: a call fails at once.
    let r = c
        .call(
            &[("rpcID", "1"), ("feature", "driver:edge"), ("method", "hi")],
            b"",
        )
        .await;
    assert_eq!(
        r.labels.get_str("error"),
        Some("feature driver:edge is not alive (disconnected)")
    );

    // Hello: options (the config's, and the rules' collapsedEvents), start, alive.
    let mut d = Tcp::connect(b.local_addr()).await;
    let options = become_driver(&b, &mut d, "edge").await;
    assert_eq!(options["data"], json!({"greeting": "hi"}));
    assert!(
        options["dynamicData"]["collapsedEvents"]["edge.ping"].is_array(),
        "{options}"
    );
    let s = wait_alive(&b, "edge").await;
    assert_eq!(s.peer, Some(d.s.local_addr().unwrap().to_string()));
    assert_eq!((s.starts, s.alive_count), (1, 1));

    // A client calls it: the call arrives with the client as caller; its return goes back.
    c.send(&call("2", "driver:edge", "hi", b"there")).await;
    let got = expect(&mut d, "rpc call", |e| e.is("rpc", "call")).await;
    assert_eq!(got.labels.get_str("method"), Some("hi"));
    assert_eq!(&got.payload[..], b"there");
    let caller = got.labels.get_str("caller").unwrap().to_string();
    assert!(caller.starts_with("client:"), "{caller}");
    d.send(
        &Envelope::new("rpc", "return")
            .with_label("rpcID", "2")
            .with_label("caller", caller)
            .with_payload(&b"hello there"[..]),
    )
    .await;
    let r = expect(&mut c, "return 2", |e| {
        e.labels.get_str("rpcID") == Some("2")
    })
    .await;
    assert_eq!(
        (&r.payload[..], r.labels.get_str("error")),
        (&b"hello there"[..], None)
    );

    // It calls the broker and another driver, as `driver:edge`.
    d.send(&call("a", "broker", "ping", b"")).await;
    let r = expect(&mut d, "return a", |e| e.is("rpc", "return")).await;
    assert_eq!(&r.payload[..], b"pong");
    assert_eq!(r.labels.get_str("caller"), Some("driver:edge"));
    d.send(&call("b", "driver:conf", "echo", b"via conf")).await;
    let r = expect(&mut d, "return b", |e| e.is("rpc", "return")).await;
    assert_eq!(
        (r.labels.get_str("rpcID"), &r.payload[..]),
        (Some("b"), &b"via conf"[..])
    );

    // A rule sends it an eventbus command when conf emits `go`.
    let emit = json!({"events": ["conf.go"], "data": {"x": "42"}}).to_string();
    c.send(&call("3", "driver:conf", "emit", emit.as_bytes()))
        .await;
    let cmd = expect(&mut d, "eventbus command", |e| e.is("eventbus", "command")).await;
    assert_eq!(cmd.labels.get_str("method"), Some("log"));
    assert_eq!(
        serde_json::from_slice::<Value>(&cmd.payload).unwrap(),
        json!({"x": "42"})
    );

    // Its events go through the rules: conf runs the command and returns success.
    let event = json!({"events": ["edge.ping"], "data": {"n": "7"}}).to_string();
    d.send(&Envelope::new("eventbus", "message").with_payload(event.into_bytes()))
        .await;
    log.wait_for(&["command returned", "session=\"edge-to-conf-", "success"])
        .await;

    // A call in flight when it disconnects fails at once, not at its deadline.
    c.send(&call("4", "driver:edge", "slow", b"").with_label("timeout", "30s"))
        .await;
    expect(&mut d, "the slow call", |e| {
        e.is("rpc", "call") && e.labels.get_str("method") == Some("slow")
    })
    .await;
    let t = Instant::now();
    drop(d);
    let r = expect(&mut c, "return 4", |e| {
        e.labels.get_str("rpcID") == Some("4")
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(
        r.labels.get_str("error"),
        Some("driver edge disconnected before it answered")
    );
    let s = wait_driver(&b, "edge", 5, |s| s.state == DriverState::Disconnected).await;
    assert_eq!(
        (s.peer, s.last_error.as_deref()),
        (None, Some("connection closed"))
    );
    // A rule that targets it now gets an error.
    c.send(&call("5", "driver:conf", "emit", emit.as_bytes()))
        .await;
    log.wait_for(&["rule command not delivered", "driver edge is disconnected"])
        .await;

    // It comes back: alive again, the restart counted, calls reach it.
    let mut d = Tcp::connect(b.local_addr()).await;
    become_driver(&b, &mut d, "edge").await;
    let s = wait_alive(&b, "edge").await;
    assert_eq!((s.starts, s.restarts, s.alive_count), (2, 1, 2));
    c.send(&call("6", "driver:edge", "hi", b"")).await;
    let got = expect(&mut d, "rpc call 6", |e| e.is("rpc", "call")).await;
    assert_eq!(got.labels.get_str("rpcID"), Some("6"));
    b.run_until(async {}).await;
}

#[actix::test]
async fn names_that_collide_are_refused_and_remote_drivers_are_listed() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &body()))
        .await
        .unwrap();
    wait_alive(&b, "conf").await;
    // The name of a spawned driver: refused, and the connection goes on as a client.
    let mut x = Tcp::connect(b.local_addr()).await;
    x.send(&hello("conf")).await;
    let e = expect(&mut x, "driver error", |e| e.channel == "driver").await;
    assert!(e.is("driver", "error"), "{e:?}");
    assert_eq!(
        e.labels.get_str("error"),
        Some("driver `conf` is configured to be spawned by the broker, not remote")
    );
    x.send(&Envelope::new("command", "ping")).await;
    expect(&mut x, "state alive", |e| e.is("state", "alive")).await;
    assert!(wait_alive(&b, "conf").await.pid.is_some());

    // A remote driver already connected: the second hello is refused.
    let mut d = Tcp::connect(b.local_addr()).await;
    become_driver(&b, &mut d, "edge").await;
    x.send(&hello("edge")).await;
    let e = expect(&mut x, "driver error", |e| e.channel == "driver").await;
    assert!(
        e.labels
            .get_str("error")
            .unwrap()
            .starts_with("driver `edge` is already connected"),
        "{e:?}"
    );
    // A name the config does not declare is hosted while it is connected.
    x.send(&hello("adhoc")).await;
    expect(&mut x, "command start", |e| e.is("command", "start")).await;
    x.send(&Envelope::new("state", "alive")).await;
    let s = wait_alive(&b, "adhoc").await;
    assert_eq!(s.peer, Some(x.s.local_addr().unwrap().to_string()));

    // Listed with their peers: `drivers` (over RPC) and the tree.
    let mut c = Tcp::connect(b.local_addr()).await;
    let r = c
        .call(
            &[("rpcID", "1"), ("feature", "broker"), ("method", "drivers")],
            b"",
        )
        .await;
    let list: Vec<Value> = serde_json::from_slice(&r.payload).unwrap();
    let edge = list.iter().find(|d| d["name"] == "edge").unwrap();
    assert_eq!(edge["remote"], json!(true));
    assert_eq!(edge["peer"], json!(d.s.local_addr().unwrap().to_string()));
    assert_eq!(edge["state"], json!("alive"));
    let conf = list.iter().find(|d| d["name"] == "conf").unwrap();
    assert_eq!(
        (conf["remote"].clone(), conf["peer"].clone()),
        (json!(false), Value::Null)
    );
    let tree = b.tree().render();
    let line = tree.lines().find(|l| l.contains("driver:edge")).unwrap();
    assert!(
        line.contains(&format!("alive remote {}", d.s.local_addr().unwrap())),
        "{tree}"
    );
    assert!(tree.contains("driver:adhoc"), "{tree}");

    // The undeclared one leaves the list when it disconnects; the declared one stays.
    drop(x);
    drop(d);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let all = b.drivers().await;
        let edge = all.iter().find(|s| s.name == "edge").map(|s| s.state);
        if !all.iter().any(|s| s.name == "adhoc") && edge == Some(DriverState::Disconnected) {
            break;
        }
        assert!(Instant::now() < deadline, "{all:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_required_remote_driver_that_never_says_hello_fails_start_up() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let body =
        "[[driver]]\nname = \"edge\"\nremote = true\nrequired = true\nstart_timeout_ms = 300\n";
    let Err(e) = switchyard::start(&config(dir.path(), body)).await else {
        panic!("start-up should fail");
    };
    assert_eq!(
        e.to_string(),
        "required driver `edge` failed to start: no `driver hello` within 300 ms (remote driver)"
    );
}

#[test]
fn remote_in_the_config_is_checked() {
    let e = Config::parse(
        "[[driver]]\nname = \"a\"\ncommand = \"sh\"\nremote = true\n",
        "c.toml",
    )
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("driver[0].remote"));
    assert_eq!(e.line, Some((4, 1)));
    assert_eq!(
        e.message,
        "a remote driver connects to the broker and has no `command`, got command `sh`"
    );
    let e = Config::parse("[[driver]]\nname = \"a\"\nservice = \"x\"\n", "c.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("driver[0].command"));
    assert!(
        e.message
            .starts_with("expected the path of an executable (or `remote = true`"),
        "{e}"
    );
    let ok = Config::parse("[[driver]]\nname = \"a\"\nremote = true\n", "c.toml").unwrap();
    let spec = &ok.host_settings().drivers[0];
    assert!(spec.remote && spec.command.as_os_str().is_empty());
}

#[actix::test]
async fn saying_hello_as_a_driver_needs_admin() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let auth = common::auth::section(
        "login_delay_ms = 1",
        &[
            ("ops", "pw1", "admin = true"),
            ("app", "pw2", "call = [\"driver:*\"]"),
        ],
    );
    let body = format!("[[driver]]\nname = \"edge\"\nremote = true\n{auth}");
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    let mut app = Tcp::connect(b.local_addr()).await;
    app.send(&common::auth::login_env("app", "pw2", None)).await;
    expect(&mut app, "auth ok", |e| e.is("auth", "ok")).await;
    app.send(&hello("edge")).await;
    let e = expect(&mut app, "driver error", |e| e.channel == "driver").await;
    assert_eq!(
        e.labels.get_str("error"),
        Some("permission denied: admin driver hello as `edge` (admin only)")
    );
    let s = wait_driver(&b, "edge", 5, |_| true).await;
    assert_eq!(s.state, DriverState::Disconnected);
    let mut ops = Tcp::connect(b.local_addr()).await;
    ops.send(&common::auth::login_env("ops", "pw1", None)).await;
    expect(&mut ops, "auth ok", |e| e.is("auth", "ok")).await;
    become_driver(&b, &mut ops, "edge").await;
    b.run_until(async {}).await;
}

/// The test driver as a remote driver: `switchyard-driver --connect ADDR --name NAME`.
fn remote_driver(b: &switchyard::Broker, name: &str) -> tokio::process::Child {
    tokio::process::Command::new(DRIVER)
        .args(["--connect", &b.local_addr().to_string(), "--name", name])
        .args(["operator", "conformance"])
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[actix::test]
async fn the_test_driver_runs_remote_over_tcp() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &body()))
        .await
        .unwrap();
    wait_alive(&b, "conf").await;
    let mut p = remote_driver(&b, "edge");
    let s = wait_alive(&b, "edge").await;
    assert!(s.peer.is_some() && s.pid.is_none(), "{s:?}");
    let mut c = Tcp::connect(b.local_addr()).await;
    let r = c
        .call(
            &[
                ("rpcID", "1"),
                ("feature", "driver:edge"),
                ("method", "options"),
            ],
            b"",
        )
        .await;
    let options: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(options["data"], json!({"greeting": "hi"}), "{options}");
    // It calls through the broker: `call` makes it call `broker` `ping`.
    let r = c
        .call(
            &[
                ("rpcID", "2"),
                ("feature", "driver:edge"),
                ("method", "call"),
            ],
            br#"{"feature":"broker","method":"ping"}"#,
        )
        .await;
    assert_eq!(
        (&r.payload[..], r.labels.get_str("error")),
        (&b"pong"[..], None)
    );
    // Killed with a call in flight (handed to its connection): the call fails at once.
    let before = wait_alive(&b, "edge").await.frames_out;
    c.send(&call("3", "driver:edge", "sleep", br#"{"seconds":30}"#).with_label("timeout", "60s"))
        .await;
    wait_driver(&b, "edge", 5, |s| s.frames_out > before).await;
    let t = Instant::now();
    p.kill().await.unwrap();
    let r = expect(&mut c, "return 3", |e| {
        e.labels.get_str("rpcID") == Some("3")
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(
        r.labels.get_str("error"),
        Some("driver edge disconnected before it answered")
    );
    // Started again, it is alive again.
    let _p = remote_driver(&b, "edge");
    wait_driver(&b, "edge", 10, |s| {
        s.state == DriverState::Alive && s.alive_count == 2
    })
    .await;
    // A second one with the same name is refused and exits.
    let mut dup = remote_driver(&b, "edge");
    let status = tokio::time::timeout(Duration::from_secs(10), dup.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(3));
    b.run_until(async {}).await;
}

#[actix::test]
async fn many_calls_at_once_all_reach_a_remote_driver() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &body()))
        .await
        .unwrap();
    let mut d = Tcp::connect(b.local_addr()).await;
    become_driver(&b, &mut d, "edge").await;
    let mut c = Tcp::connect(b.local_addr()).await;
    // One write: the host routes them in one turn, faster than the connection writes.
    let mut burst = bytes::BytesMut::new();
    for i in 0..256 {
        call(&i.to_string(), "driver:edge", "hi", b"")
            .encode(&mut burst)
            .unwrap();
    }
    use tokio::io::AsyncWriteExt;
    c.s.write_all(&burst).await.unwrap();
    for _ in 0..256 {
        let got = expect(&mut d, "a call", |e| e.is("rpc", "call")).await;
        let ret = Envelope::new("rpc", "return")
            .with_label("rpcID", got.labels.get_str("rpcID").unwrap().to_string())
            .with_label("caller", got.labels.get_str("caller").unwrap().to_string());
        d.send(&ret).await;
    }
    for _ in 0..256 {
        let r = expect(&mut c, "a return", |e| e.is("rpc", "return")).await;
        assert_eq!(r.labels.get_str("error"), None, "{r:?}");
    }
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_reload_hot_reloads_and_removes_declared_remote_drivers_only() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let mut b = switchyard::start(&config(dir.path(), &body()))
        .await
        .unwrap();
    let mut d = Tcp::connect(b.local_addr()).await;
    become_driver(&b, &mut d, "edge").await;
    let mut x = Tcp::connect(b.local_addr()).await;
    become_driver(&b, &mut x, "adhoc").await;

    // Changed options: sent again to the connected driver, which answers alive again.
    let changed = body().replace("greeting = \"hi\"", "greeting = \"bye\"");
    let summary = b.reload_with(config(dir.path(), &changed)).await.unwrap();
    assert_eq!(summary.hot, vec!["edge".to_string()]);
    assert!(summary.stopped.is_empty(), "{summary:?}");
    let options = expect(&mut d, "command options", |e| e.is("command", "options")).await;
    let options: Value = serde_json::from_slice(&options.payload).unwrap();
    assert_eq!(options["data"], json!({"greeting": "bye"}));
    expect(&mut d, "command start", |e| e.is("command", "start")).await;
    wait_driver(&b, "edge", 5, |s| s.state == DriverState::Reloading).await;
    d.send(&Envelope::new("state", "alive")).await;
    wait_driver(&b, "edge", 5, |s| {
        s.state == DriverState::Alive && s.alive_count == 2
    })
    .await;

    // Removed from the config: stopped; the connection stays, as a plain client.
    let without = driver("conf", "conformance", "");
    let summary = b.reload_with(config(dir.path(), &without)).await.unwrap();
    assert_eq!(summary.stopped, vec!["edge".to_string()]);
    expect(&mut d, "command stop", |e| e.is("command", "stop")).await;
    d.send(&Envelope::new("state", "stopped")).await;
    let e = expect(&mut d, "driver error", |e| e.is("driver", "error")).await;
    assert_eq!(
        e.labels.get_str("error"),
        Some("driver stopped by the broker")
    );
    d.send(&Envelope::new("command", "ping")).await;
    expect(&mut d, "state alive", |e| e.is("state", "alive")).await;
    let all = b.drivers().await;
    assert!(!all.iter().any(|s| s.name == "edge"), "{all:#?}");
    // The undeclared one was never the config's to stop.
    assert_eq!(
        wait_alive(&b, "adhoc").await.peer,
        Some(x.s.local_addr().unwrap().to_string())
    );
    b.run_until(async {}).await;
}
