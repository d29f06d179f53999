//! Secure by default: ports off loopback need `[auth]` (or an explicit
//! `auth.allow_anonymous`), the maze ports need `maze.allow`; `[auth]` config errors
//! name the key, the value and the line; `switchyard passwd` prints hashes that verify.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::auth::hash;
use common::Log;
use switchyard::Config;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn parse(text: &str) -> Result<Config, switchyard::config::ConfigError> {
    Config::parse(text, "c.toml")
}

fn user(name: &str) -> String {
    format!(
        "[[auth.user]]\nname = \"{name}\"\npassword_hash = \"{}\"\n",
        hash("pw")
    )
}

#[test]
fn an_open_bind_without_auth_is_refused() {
    let e = parse("[broker]\nbind = \"0.0.0.0:7400\"\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("broker.bind"));
    assert_eq!(e.line, Some((2, 1)));
    let text = e.to_string();
    assert!(
        text.contains("0.0.0.0:7400 is not a loopback address"),
        "{text}"
    );
    assert!(
        text.contains("[auth]") && text.contains("allow_anonymous"),
        "{text}"
    );
    for (section, key) in [("gateway", "http_bind"), ("gateway", "grpc_bind")] {
        let e = parse(&format!("[{section}]\n{key} = \"10.1.2.3:80\"\n")).unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some(format!("{section}.{key}").as_str()),
            "{e}"
        );
    }
    // With users, or with anonymous access asked for, it is allowed.
    parse(&format!(
        "[broker]\nbind = \"0.0.0.0:7400\"\n[auth]\n{}",
        user("a")
    ))
    .unwrap();
    parse("[broker]\nbind = \"0.0.0.0:7400\"\n[auth]\nallow_anonymous = true\n").unwrap();
    // The gateway checks the same users: off loopback, [auth] is enough.
    let gw = "[gateway]\nhttp_bind = \"10.1.2.3:80\"\n";
    parse(&format!("{gw}[auth]\n{}", user("a"))).unwrap();
    // The old shared token is refused, naming what replaces it.
    let e = parse(&format!("{gw}token = \"t\"\n[auth]\n{}", user("a"))).unwrap_err();
    assert!(e.message.contains("gateway.token is gone"), "{e}");
    assert!(e.message.contains("[[auth.user]] with token_hash"), "{e}");
    // Loopback needs nothing.
    parse("[broker]\nbind = \"127.0.0.1:7400\"\n[gateway]\nhttp_bind = \"[::1]:80\"\n").unwrap();
}

#[test]
fn open_maze_ports_need_allowed_networks() {
    let maze = "[maze]\nevent_bind = \"0.0.0.0:9090\"\n";
    let e = parse(maze).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("maze.event_bind"));
    assert!(e.message.contains("maze.allow"), "{e}");
    // [auth] does not help: the maze has no login.
    let e = parse(&format!("{maze}[auth]\n{}", user("a"))).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("maze.event_bind"));
    parse(&format!(
        "{maze}allow = [\"10.0.0.0/8\", \"192.168.1.5\"]\n"
    ))
    .unwrap();
    let e = parse(&format!("{maze}allow = [\"10.0.0.1/8\"]\n")).unwrap_err();
    assert_eq!(e.line.map(|l| l.0), Some(3), "{e}");
}

#[test]
fn auth_config_errors_name_key_value_and_line() {
    let two = format!("[auth]\n{}{}", user("ops"), user("ops"));
    let e = parse(&two).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.user[1].name"));
    assert_eq!(e.line.map(|l| l.0), Some(6), "{e}");
    assert!(
        e.message.contains("defined twice") && e.message.contains("`ops`"),
        "{e}"
    );

    let bad =
        "[auth]\n[[auth.user]]\nname = \"a\"\npassword_hash = \"$2b$12$abcdefghijklmnopqrstuv\"\n";
    let e = parse(bad).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.user[0].password_hash"));
    assert_eq!(e.line.map(|l| l.0), Some(4), "{e}");
    assert!(e.message.contains("$2b$12$"), "names the value: {e}");

    let argon2i = hash("x").replace("$argon2id$", "$argon2i$");
    let e = parse(&format!(
        "[auth]\n[[auth.user]]\nname = \"a\"\ntoken_hash = \"{argon2i}\"\n"
    ))
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.user[0].token_hash"));
    assert!(e.message.contains("expected an argon2id hash"), "{e}");

    let e = parse("[auth]\n[[auth.user]]\nname = \"nohash\"\npublish = [\"a\"]\n").unwrap_err();
    assert!(
        e.message.contains("neither password_hash nor token_hash"),
        "{e}"
    );
    assert_eq!(e.line.map(|l| l.0), Some(3), "{e}");

    let e = parse(&format!("[auth]\n{}publish = [\"orders*\"]\n", user("a"))).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.user[0].publish"));
    assert!(e.message.contains("orders*"), "{e}");
    let e = parse(&format!("[auth]\n{}call = [\"svc:de*\"]\n", user("a"))).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.user[0].call"));

    let e = parse("[auth]\nlogin_timeout_ms = 5000\n").unwrap_err();
    assert!(e.message.contains("nobody could log in"), "{e}");
    let e = parse(&format!("[auth]\nlogn_timeout_ms = 1\n{}", user("a"))).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.logn_timeout_ms"), "{e}");
}

#[test]
fn the_binary_refuses_to_start_on_an_open_bind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[broker]\nbind = \"0.0.0.0:0\"\n").unwrap();
    let out = Command::new(BIN).arg("-c").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broker.bind") && err.contains("[auth]"),
        "{err}"
    );
}

#[actix::test]
async fn allow_anonymous_starts_open_with_a_warning() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let config = parse(&format!(
        "[broker]\nbind = \"0.0.0.0:0\"\n[storage]\ndir = \"{}\"\n[auth]\nallow_anonymous = true\n",
        dir.path().display()
    ))
    .unwrap();
    let b = switchyard::start(&config).await.unwrap();
    let line = log.wait_for(&["WARN", "allow_anonymous"]).await;
    assert!(line.contains("broker.bind=0.0.0.0:0"), "{line}");
    // Open: no login needed.
    let port = b.local_addr().port();
    let mut c = common::connect(([127, 0, 0, 1], port).into()).await;
    common::ping(&mut c).await;
}

#[actix::test]
async fn maze_peers_outside_the_allowed_networks_are_refused() {
    let (_log, _g) = Log::capture();
    let config = parse(
        "[broker]\nbind = \"127.0.0.1:0\"\n[maze]\nevent_bind = \"127.0.0.1:0\"\n\
         client_bind = \"127.0.0.1:0\"\nallow = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let b = switchyard::start(&config).await.unwrap();
    let m = b.maze().unwrap().clone();
    for addr in [m.event_addr, m.client_addr] {
        let mut c = common::connect(addr).await;
        assert!(
            common::closed_by_peer(&mut c).await,
            "{addr} let a stranger in"
        );
    }
    assert_eq!(b.stats().auth.failures_for("maze", "not_allowed"), 2);
    // Loopback allowed: the same ports take it.
    let config = parse(
        "[broker]\nbind = \"127.0.0.1:0\"\n[maze]\nevent_bind = \"127.0.0.1:0\"\n\
         client_bind = \"127.0.0.1:0\"\nallow = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    let b = switchyard::start(&config).await.unwrap();
    let mut c = common::connect(b.maze().unwrap().client_addr).await;
    tokio::io::AsyncWriteExt::write_all(&mut c, b"42\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        tokio::io::AsyncReadExt::read(&mut c, &mut buf),
    )
    .await;
    assert!(read.is_err(), "an allowed peer stays connected: {read:?}");
    assert_eq!(b.stats().auth.failures_for("maze", "not_allowed"), 0);
}

#[test]
fn passwd_prints_a_hash_that_verifies() {
    let mut child = Command::new(BIN)
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret pass\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = String::from_utf8(out.stdout).unwrap();
    let h = h.trim();
    assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    assert!(switchyard_actors::auth::verify_secret(b"s3cret pass", h));
    assert!(!switchyard_actors::auth::verify_secret(b"s3cret pass\n", h));
    // The hash is accepted by the config.
    parse(&format!(
        "[auth]\n[[auth.user]]\nname = \"a\"\npassword_hash = \"{h}\"\n"
    ))
    .unwrap();
    // Empty input is an error, not a hash of nothing.
    let out = Command::new(BIN)
        .arg("passwd")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
}
