//! Permissions on the broker port: each kind allowed and refused, with the connection
//! usable after a refusal, the topic list filtered, and a refused RPC call that never
//! reaches its driver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::auth::section;
use common::drivers::{config, driver, wait_alive, Tcp};
use common::Log;
use switchyard_codecs::Envelope;

const WAIT: Duration = Duration::from_secs(5);

async fn start() -> (switchyard::Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut body = driver("conf", "conformance", "") + &driver("victim", "conformance", "");
    body += "[chat]\n[[chat.adapter]]\nname = \"irc\"\ndriver = \"tcp\"\n\
             [[chat.adapter]]\nname = \"slack\"\ndriver = \"tcp\"\n";
    body += &section(
        "",
        &[
            (
                "app",
                "pw",
                "publish = [\"orders\", \"events.*\"]\nsubscribe = [\"orders\", \"shared.>\"]\n\
                 call = [\"driver:conf\", \"chat:irc\"]",
            ),
            (
                "root",
                "pw",
                "publish = [\">\"]\nsubscribe = [\">\"]\nadmin = true",
            ),
            (
                "bus",
                "pw",
                "publish = [\"eventbus\"]\nsubscribe = [\"eventbus\"]",
            ),
        ],
    );
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    wait_alive(&b, "conf").await;
    wait_alive(&b, "victim").await;
    (b, dir)
}

async fn as_user(b: &switchyard::Broker, user: &str) -> Tcp {
    let mut c = Tcp::connect(b.local_addr()).await;
    c.send(
        &Envelope::new("auth", "login")
            .with_label("user", user.to_string())
            .with_label("password", "pw"),
    )
    .await;
    let ok = c.next(WAIT).await.unwrap();
    assert!(ok.is("auth", "ok"), "{ok:?}");
    c
}

fn topic(subject: &str, labels: &[(&str, &str)]) -> Envelope {
    let mut e = Envelope::new("topic", subject.to_string()).with_payload(&b"v"[..]);
    for (k, v) in labels {
        e.labels.insert(k.to_string(), v.to_string());
    }
    e
}

/// Sends `e` and returns the first answer (deliveries of earlier subscriptions skipped).
async fn ask(c: &mut Tcp, e: Envelope) -> Envelope {
    c.send(&e).await;
    loop {
        let r = c.next(WAIT).await.expect("an answer");
        if !r.is("topic", "deliver") {
            return r;
        }
    }
}

fn error_of(e: &Envelope) -> &str {
    e.labels.get_str("error").unwrap_or_default()
}

/// Still usable: a ping is answered.
async fn usable(c: &mut Tcp) {
    let alive = ask(c, Envelope::new("command", "ping")).await;
    assert!(alive.is("state", "alive"), "{alive:?}");
}

#[actix::test]
async fn topic_permissions() {
    let (_log, _g) = Log::capture();
    let (b, _dir) = start().await;
    let mut root = as_user(&b, "root").await;
    for t in ["orders", "secret", "shared.x"] {
        let r = ask(&mut root, topic("create", &[("topic", t)])).await;
        assert!(r.is("topic", "created"), "{r:?}");
    }
    let mut app = as_user(&b, "app").await;

    // publish
    let r = ask(
        &mut app,
        topic("publish", &[("topic", "orders"), ("id", "1")]),
    )
    .await;
    assert!(r.is("topic", "ack"), "{r:?}");
    let r = ask(
        &mut app,
        topic("publish", &[("topic", "events.click"), ("id", "2")]),
    )
    .await;
    assert!(r.is("topic", "ack"), "{r:?}");
    let r = ask(
        &mut app,
        topic("publish", &[("topic", "secret"), ("id", "3")]),
    )
    .await;
    assert!(r.is("topic", "error"), "{r:?}");
    assert_eq!(error_of(&r), "permission denied: publish topic `secret`");
    assert_eq!(r.labels.get_str("id"), Some("3"));
    usable(&mut app).await;

    // subscribe, alone and in a group
    let r = ask(
        &mut app,
        topic(
            "subscribe",
            &[("topic", "orders"), ("from", "earliest"), ("id", "4")],
        ),
    )
    .await;
    assert!(r.is("topic", "subscribed"), "{r:?}");
    let r = ask(
        &mut app,
        topic("subscribe", &[("topic", "secret"), ("id", "5")]),
    )
    .await;
    assert_eq!(error_of(&r), "permission denied: subscribe topic `secret`");
    assert_eq!(r.labels.get_str("id"), Some("5"));
    let r = ask(
        &mut app,
        topic(
            "subscribe",
            &[("topic", "secret"), ("group", "g"), ("id", "6")],
        ),
    )
    .await;
    assert_eq!(error_of(&r), "permission denied: subscribe topic `secret`");
    usable(&mut app).await;

    // commit
    let r = ask(
        &mut app,
        topic(
            "commit",
            &[
                ("topic", "secret"),
                ("group", "g"),
                ("partition", "0"),
                ("offset", "0"),
                ("id", "7"),
            ],
        ),
    )
    .await;
    assert_eq!(error_of(&r), "permission denied: commit topic `secret`");
    let mut app2 = as_user(&b, "app").await;
    let r = ask(
        &mut app2,
        topic(
            "commit",
            &[
                ("topic", "shared.x"),
                ("group", "g"),
                ("partition", "0"),
                ("offset", "0"),
            ],
        ),
    )
    .await;
    assert!(r.is("topic", "committed"), "{r:?}");

    // create: admins only
    let r = ask(
        &mut app2,
        topic("create", &[("topic", "mine"), ("id", "8")]),
    )
    .await;
    assert_eq!(error_of(&r), "permission denied: create topic `mine`");
    usable(&mut app2).await;
    // delete: admins only
    let r = ask(
        &mut app2,
        topic("delete", &[("topic", "orders"), ("id", "8")]),
    )
    .await;
    assert_eq!(error_of(&r), "permission denied: delete topic `orders`");
    usable(&mut app2).await;

    // list: only what the user may subscribe to
    let r = ask(&mut app2, topic("list", &[])).await;
    let list: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders", "shared.x"]);
    let r = ask(&mut root, topic("list", &[])).await;
    let list: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4, "{list}");

    let s = &b.stats().auth;
    assert_eq!(s.denied_for("publish"), 1);
    assert_eq!(s.denied_for("subscribe"), 2);
    assert_eq!(s.denied_for("commit"), 1);
    assert_eq!(s.denied_for("create"), 1);
    assert_eq!(s.denied_for("delete"), 1);
}

#[actix::test]
async fn a_refused_call_never_reaches_the_driver() {
    let (_log, _g) = Log::capture();
    let (b, _dir) = start().await;
    let victim = wait_alive(&b, "victim").await;
    let mut app = as_user(&b, "app").await;
    let r = app
        .call(
            &[
                ("rpcID", "1"),
                ("feature", "driver:conf"),
                ("method", "echo"),
            ],
            b"{\"a\":1}",
        )
        .await;
    assert_eq!(&r.payload[..], b"{\"a\":1}", "{r:?}");
    let calls = b.driver_stats().await.rpc.calls;
    // `exit` would end the driver: it must not get there.
    let r = app
        .call(
            &[
                ("rpcID", "2"),
                ("feature", "driver:victim"),
                ("method", "exit"),
            ],
            b"{}",
        )
        .await;
    assert_eq!(
        error_of(&r),
        "permission denied: call feature `driver:victim`"
    );
    assert!(r.labels.get_str("caller").unwrap().starts_with("client:"));
    usable(&mut app).await;
    assert_eq!(
        b.driver_stats().await.rpc.calls,
        calls,
        "the host saw the call"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = wait_alive(&b, "victim").await;
    assert_eq!((now.pid, now.restarts), (victim.pid, victim.restarts));
    assert_eq!(b.stats().auth.denied_for("call"), 1);
}

#[actix::test]
async fn the_broker_feature_by_method() {
    let (_log, _g) = Log::capture();
    let (b, _dir) = start().await;
    let mut app = as_user(&b, "app").await;
    let call = |id: &'static str, method: &'static str| {
        [("rpcID", id), ("feature", "broker"), ("method", method)]
    };
    let r = app.call(&call("1", "ping"), b"").await;
    assert_eq!(&r.payload[..], b"pong");
    for (id, method) in [("2", "tree"), ("3", "drivers")] {
        let r = app.call(&call(id, method), b"").await;
        assert_eq!(
            error_of(&r),
            format!("permission denied: admin method `broker.{method}` (admin only)")
        );
    }
    let r = app
        .call(&call("4", "publish"), br#"{"topic":"orders","value":"v"}"#)
        .await;
    assert!(r.labels.get_str("error").is_none(), "{r:?}");
    let r = app
        .call(&call("5", "publish"), br#"{"topic":"secret","value":"v"}"#)
        .await;
    assert_eq!(error_of(&r), "permission denied: publish topic `secret`");
    let r = app
        .call(&call("6", "fetch"), br#"{"topic":"orders"}"#)
        .await;
    assert!(r.labels.get_str("error").is_none(), "{r:?}");
    let r = app
        .call(&call("7", "fetch"), br#"{"topic":"secret"}"#)
        .await;
    assert_eq!(error_of(&r), "permission denied: fetch topic `secret`");
    usable(&mut app).await;
    let mut root = as_user(&b, "root").await;
    let r = root.call(&call("1", "tree"), b"").await;
    assert!(r.labels.get_str("error").is_none(), "{r:?}");
    assert_eq!(b.stats().auth.denied_for("admin"), 2);
    assert_eq!(b.stats().auth.denied_for("fetch"), 1);
}

#[actix::test]
async fn eventbus_and_chat() {
    let (_log, _g) = Log::capture();
    let (b, _dir) = start().await;
    let mut app = as_user(&b, "app").await;
    let r = ask(
        &mut app,
        Envelope::new("eventbus", "subscribe").with_label("id", "1"),
    )
    .await;
    assert!(r.is("eventbus", "error"), "{r:?}");
    assert_eq!(
        error_of(&r),
        "permission denied: subscribe topic `eventbus`"
    );
    assert_eq!(r.labels.get_str("id"), Some("1"));
    let r = ask(
        &mut app,
        Envelope::new("eventbus", "message").with_payload(&b"{}"[..]),
    )
    .await;
    assert_eq!(error_of(&r), "permission denied: publish topic `eventbus`");
    usable(&mut app).await;
    let mut bus = as_user(&b, "bus").await;
    let r = ask(&mut bus, Envelope::new("eventbus", "subscribe")).await;
    assert!(r.is("eventbus", "subscribed"), "{r:?}");

    // chat: the feature chat:<adapter>, or admin
    let r = ask(
        &mut app,
        Envelope::new("chat", "register").with_label("adapter", "slack"),
    )
    .await;
    assert!(r.is("chat", "error"), "{r:?}");
    assert_eq!(error_of(&r), "permission denied: chat adapter `slack`");
    usable(&mut app).await;
    let r = ask(
        &mut app,
        Envelope::new("chat", "register").with_label("adapter", "irc"),
    )
    .await;
    assert!(r.is("chat", "registered"), "{r:?}");
    let mut root = as_user(&b, "root").await;
    let r = ask(
        &mut root,
        Envelope::new("chat", "register").with_label("adapter", "slack"),
    )
    .await;
    assert!(r.is("chat", "registered"), "{r:?}");
    assert_eq!(b.stats().auth.denied_for("chat"), 1);
}
