//! `auth login` on the broker port: good and bad credentials, unknown users, tokens, the
//! login deadline, frames before a login, and the growing delay after failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::auth::{bytes, hash, login, login_env, section};
use common::topics::{config, label, Client};
use common::{topic_env, Log};
use switchyard_codecs::Envelope;
use tokio::io::AsyncReadExt;

async fn start(settings: &str) -> (switchyard::Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = section(
        settings,
        &[(
            "ops",
            "pw-ops",
            "publish = [\"orders\"]\nsubscribe = [\"orders\"]",
        )],
    );
    auth += &format!(
        "[[auth.user]]\nname = \"bot\"\ntoken_hash = \"{}\"\ncall = [\"svc:*\"]\n",
        hash("tok-bot")
    );
    let b = switchyard::start(&config(dir.path(), &auth)).await.unwrap();
    (b, dir)
}

/// Everything the broker sends until it closes the connection (at most 10 s).
async fn until_closed(c: &mut Client) -> Vec<u8> {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.s.read(&mut chunk))
            .await
            .expect("closed in time")
        {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&chunk[..n]),
        }
    }
}

#[actix::test]
async fn a_good_login_answers_ok_with_the_permissions() {
    let (log, _g) = Log::capture();
    let (b, _dir) = start("").await;
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&bytes(&login_env("ops", "pw-ops", Some("7")))).await;
    let ok = c.next().await;
    assert!(ok.is("auth", "ok"), "{ok:?}");
    assert_eq!(
        (label(&ok, "user"), label(&ok, "id")),
        ("ops".into(), "7".into())
    );
    let perms: serde_json::Value = serde_json::from_slice(&ok.payload).unwrap();
    assert_eq!(perms["publish"], serde_json::json!(["orders"]));
    assert_eq!(perms["admin"], false);
    // Logged in: the connection works as that user.
    c.send(&topic_env(
        "publish",
        &[("topic", "orders"), ("id", "1")],
        b"hi",
    ))
    .await;
    assert!(c.next().await.is("topic", "ack"));
    let line = log.wait_for(&["login", "user=ops"]).await;
    assert!(line.contains("peer=127.0.0.1"), "{line}");
    assert!(!log.text().contains("pw-ops"), "a password reached the log");
}

#[actix::test]
async fn a_token_logs_in_as_its_user() {
    let (log, _g) = Log::capture();
    let (b, _dir) = start("").await;
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&bytes(
        &Envelope::new("auth", "login").with_label("token", "tok-bot"),
    ))
    .await;
    let ok = c.next().await;
    assert!(ok.is("auth", "ok"), "{ok:?}");
    assert_eq!(label(&ok, "user"), "bot");
    assert!(!log.text().contains("tok-bot"), "a token reached the log");
}

#[actix::test]
async fn bad_password_and_unknown_user_get_the_same_bytes() {
    let (log, _g) = Log::capture();
    let (b, _dir) = start("login_delay_ms = 50").await;
    let mut answers = Vec::new();
    for (user, pw) in [("ops", "wrong"), ("nobody", "wrong"), ("ops", "pw-ops ")] {
        let mut c = Client::connect(b.local_addr()).await;
        c.send(&bytes(&login_env(user, pw, Some("1")))).await;
        answers.push(until_closed(&mut c).await);
    }
    assert_eq!(
        answers[0],
        b"auth error 2 0\nerror 15\nbad credentialsid 1\n1".to_vec()
    );
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    // A bad token reads the same, without the id.
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&bytes(
        &Envelope::new("auth", "login").with_label("token", "nope"),
    ))
    .await;
    assert_eq!(
        until_closed(&mut c).await,
        b"auth error 1 0\nerror 15\nbad credentials".to_vec()
    );
    assert_eq!(b.stats().auth.failures_for("broker", "bad_credentials"), 4);
    assert!(!log.text().contains("wrong"), "a password reached the log");
}

#[actix::test]
async fn a_frame_before_login_is_refused_and_closes() {
    let (_log, _g) = Log::capture();
    let (b, _dir) = start("").await;
    let mut c = Client::connect(b.local_addr()).await;
    // A ping is fine before a login.
    common::ping(&mut c.s).await;
    c.send(&topic_env(
        "publish",
        &[("topic", "orders"), ("id", "5")],
        b"x",
    ))
    .await;
    assert_eq!(
        until_closed(&mut c).await,
        b"auth error 2 0\nerror 14\nlogin requiredid 1\n5".to_vec()
    );
    assert_eq!(b.stats().auth.failures_for("broker", "login_required"), 1);
    // Nothing was published.
    let mut c = Client::connect(b.local_addr()).await;
    login(&mut c, "ops", "pw-ops").await;
    c.send(&topic_env("list", &[], b"")).await;
    let list: serde_json::Value = serde_json::from_slice(&c.next().await.payload).unwrap();
    assert_eq!(list, serde_json::json!([]));
}

#[actix::test]
async fn no_login_in_time_closes() {
    let (log, _g) = Log::capture();
    let (b, _dir) = start("login_timeout_ms = 200").await;
    let mut c = Client::connect(b.local_addr()).await;
    common::ping(&mut c.s).await;
    let t0 = Instant::now();
    let got = until_closed(&mut c).await;
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(got, b"auth error 1 0\nerror 13\nlogin timeout".to_vec());
    assert_eq!(b.stats().auth.failures_for("broker", "login_timeout"), 1);
    log.wait_for(&["no login in time", "login_timeout_ms=200"])
        .await;
    // A client that logged in is not closed by the deadline.
    let mut c = Client::connect(b.local_addr()).await;
    login(&mut c, "ops", "pw-ops").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    common::ping(&mut c.s).await;
}

#[actix::test]
async fn frames_after_a_login_wait_for_its_outcome() {
    let (_log, _g) = Log::capture();
    let (b, _dir) = start("").await;
    let mut c = Client::connect(b.local_addr()).await;
    // One write: the publish must be handled as `ops`, not refused as before a login.
    let mut both = bytes(&login_env("ops", "pw-ops", None));
    both.extend(topic_env(
        "publish",
        &[("topic", "orders"), ("id", "1")],
        b"x",
    ));
    c.send(&both).await;
    assert!(c.next().await.is("auth", "ok"));
    let ack = c.next().await;
    assert!(ack.is("topic", "ack"), "{ack:?}");
}

#[actix::test]
async fn the_delay_after_bad_logins_doubles() {
    let (_log, _g) = Log::capture();
    let base = 150u64;
    let (b, _dir) = start(&format!("login_delay_ms = {base}")).await;
    let mut took = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(b.local_addr()).await;
        let t0 = Instant::now();
        c.send(&bytes(&login_env("ops", "bad", None))).await;
        let answer = c.next().await;
        took.push(t0.elapsed());
        assert!(answer.is("auth", "error"), "{answer:?}");
    }
    let ms: Vec<u128> = took.iter().map(Duration::as_millis).collect();
    assert!(ms[0] >= u128::from(base), "{ms:?}");
    assert!(ms[1] >= 2 * u128::from(base), "{ms:?}");
    assert!(ms[2] >= 4 * u128::from(base), "{ms:?}");
    // The growth is the throttle's, not noise: each wait is about twice the last.
    assert!(
        ms[1] * 10 >= ms[0] * 18 && ms[2] * 10 >= ms[1] * 18,
        "{ms:?}"
    );
    // A good login forgets the address's failures.
    let mut c = Client::connect(b.local_addr()).await;
    login(&mut c, "ops", "pw-ops").await;
    let mut c = Client::connect(b.local_addr()).await;
    let t0 = Instant::now();
    c.send(&bytes(&login_env("ops", "bad", None))).await;
    c.next().await;
    assert!(
        t0.elapsed() < Duration::from_millis(2 * base),
        "{:?}",
        t0.elapsed()
    );
}

#[actix::test]
async fn an_open_broker_answers_any_login_as_anonymous() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    let ok = login(&mut c, "whoever", "x").await;
    assert_eq!(label(&ok, "user"), "anonymous");
    // And no login is needed at all.
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&topic_env("publish", &[("topic", "t"), ("id", "1")], b"x"))
        .await;
    assert!(c.next().await.is("topic", "ack"));
}

/// Runs the built binary without blocking the broker on this thread.
async fn cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(args)
        .env_remove("SWITCHYARD_PASSWORD")
        .env_remove("SWITCHYARD_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finished")
        .unwrap()
}

#[actix::test]
async fn client_commands_log_in_with_flags_or_environment() {
    let (_log, _g) = Log::capture();
    let (b, _dir) = start("login_delay_ms = 20").await;
    let addr = b.local_addr().to_string();
    let out = cli(
        &[
            "pub",
            "--broker",
            &addr,
            "--user",
            "ops",
            "--password",
            "pw-ops",
            "orders",
            "hello",
        ],
        &[],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        &["pub", "--broker", &addr, "--user", "ops", "orders", "hello"],
        &[("SWITCHYARD_PASSWORD", "pw-ops")],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        &[
            "sub",
            "--broker",
            &addr,
            "--user",
            "ops",
            "--password",
            "pw-ops",
            "orders",
            "--from",
            "earliest",
            "--max",
            "2",
        ],
        &[],
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0 0 hello\n0 1 hello\n"
    );
    let out = cli(
        &[
            "pub",
            "--broker",
            &addr,
            "--user",
            "ops",
            "--password",
            "nope",
            "orders",
            "x",
        ],
        &[],
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("login refused: bad credentials"), "{err}");
    assert!(!err.contains("nope"), "the password was echoed: {err}");
    // Without credentials the broker refuses the request.
    let out = cli(&["topics", "--broker", &addr], &[]).await;
    assert!(!out.status.success());
    // A token from the environment; the bot may not subscribe, so it sees no topics.
    let out = cli(
        &["topics", "--broker", &addr],
        &[("SWITCHYARD_TOKEN", "tok-bot")],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("orders"));
    // The benchmark logs in on each of its connections.
    let out = cli(
        &[
            "bench",
            "pub",
            "--broker",
            &addr,
            "--user",
            "ops",
            "--password",
            "pw-ops",
            "--topic",
            "orders",
            "--count",
            "2000",
            "--batch",
            "100",
            "--quiet",
        ],
        &[],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix::test]
async fn metrics_count_failures_and_denials() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let auth = section(
        "login_delay_ms = 20",
        &[
            ("ops", "pw-ops", "publish = [\"orders\"]"),
            ("mon", "pw-mon", "admin = true"),
        ],
    );
    let b = switchyard::start(&common::gateway::gateway_config(dir.path(), &auth))
        .await
        .unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&bytes(&login_env("ops", "bad", None))).await;
    until_closed(&mut c).await;
    let mut c = Client::connect(b.local_addr()).await;
    login(&mut c, "ops", "pw-ops").await;
    c.send(&topic_env(
        "publish",
        &[("topic", "other"), ("id", "1")],
        b"x",
    ))
    .await;
    assert!(c.next().await.is("topic", "error"));
    // The connection's span carries the user from the login on.
    let line = log.wait_for(&["conn{", "user=ops", "login"]).await;
    assert!(line.contains("peer=127.0.0.1"), "{line}");
    // With [auth], /metrics is for admins (`mon:pw-mon` in base64).
    let m = common::http::request(
        b.gateway().http.unwrap(),
        "GET",
        "/metrics",
        &[("authorization", "Basic bW9uOnB3LW1vbg==")],
        b"",
    )
    .await
    .text();
    assert!(
        m.contains("switchyard_auth_failures_total{port=\"broker\",reason=\"bad_credentials\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("switchyard_permission_denied_total{op=\"publish\"} 1"),
        "{m}"
    );
    assert!(m.contains("# TYPE switchyard_auth_failures_total counter"));
}
