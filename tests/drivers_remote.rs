//! Remote drivers: a broker-port client that says `driver hello` is hosted like a
//! spawned driver (options, start, alive, RPC both ways, eventbus commands, its events
//! through the rules), its disconnect is its crash, and it may come back. Names that
//! collide are refused; `remote = true` in the config is checked and declares one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::drivers::*;
use common::remote::*;
use common::Log;
use serde_json::{json, Value};
use switchyard::Config;
use switchyard_actors::drivers::DriverState;
use switchyard_codecs::Envelope;

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

#[actix::test]
async fn start_up_waits_for_a_required_remote_driver_to_say_hello() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    // A port known before start-up, so the driver can connect while start-up waits.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = config_text(
        dir.path(),
        "[[driver]]\nname = \"edge\"\nremote = true\nrequired = true\n",
    )
    .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let driver = actix::spawn(async move {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut d = Tcp::connect(addr).await;
        d.send(&hello("edge")).await;
        expect(&mut d, "command start", |e| e.is("command", "start")).await;
        d.send(&Envelope::new("state", "alive")).await;
        d
    });
    let b = switchyard::start(&Config::parse(&text, "test").unwrap())
        .await
        .unwrap();
    // Started means it was alive already.
    let s = b
        .drivers()
        .await
        .into_iter()
        .find(|s| s.name == "edge")
        .unwrap();
    assert_eq!((s.state, s.alive_count), (DriverState::Alive, 1));
    let _d = driver.await.unwrap();
    b.run_until(async {}).await;
}
