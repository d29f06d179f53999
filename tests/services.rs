//! Named services over real TCP: `rpc register`, calls to `svc:<name>` spread by least
//! outstanding calls, instances that leave with calls in flight (errors at once, or
//! moved with `retry`), no instance, a full instance, forged returns, and the
//! `serve` permission.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::drivers::Tcp;
use switchyard::Broker;
use switchyard_codecs::Envelope;

/// Sends `rpc register` and returns the answer (`rpc registered` or `rpc error`).
async fn register(c: &mut Tcp, labels: &[(&str, &str)]) -> Envelope {
    let mut e = Envelope::new("rpc", "register");
    for (k, v) in labels {
        e.labels.insert(k.to_string(), v.to_string());
    }
    c.send(&e).await;
    c.next(Duration::from_secs(5))
        .await
        .expect("a register answer")
}

async fn instance(b: &Broker, feature: &str, extra: &[(&str, &str)]) -> Tcp {
    let mut c = Tcp::connect(b.local_addr()).await;
    let mut labels = vec![("feature", feature)];
    labels.extend_from_slice(extra);
    let r = register(&mut c, &labels).await;
    assert!(r.is("rpc", "registered"), "{r:?}");
    c
}

/// A call with a long deadline, so an answer that comes quickly came at once.
fn call(id: &str, feature: &str, payload: &[u8], retry: bool) -> Envelope {
    let e = Envelope::new("rpc", "call")
        .with_label("rpcID", id.to_string())
        .with_label("feature", feature.to_string())
        .with_label("method", "m")
        .with_label("timeout", "30s")
        .with_payload(payload.to_vec());
    if retry {
        e.with_label("retry", "true")
    } else {
        e
    }
}

/// The next `rpc call` an instance receives.
async fn next_call(c: &mut Tcp) -> Envelope {
    let e = c.next(Duration::from_secs(5)).await.expect("a call");
    assert!(e.is("rpc", "call"), "{e:?}");
    e
}

fn answer(call: &Envelope, payload: &[u8]) -> Envelope {
    Envelope::new("rpc", "return")
        .with_label("rpcID", call.labels.get_str("rpcID").unwrap().to_string())
        .with_label("caller", call.labels.get_str("caller").unwrap().to_string())
        .with_payload(payload.to_vec())
}

/// The next return the caller receives, within 2 s (calls have a 30 s deadline).
async fn quick_return(c: &mut Tcp) -> Envelope {
    let r = c
        .next(Duration::from_secs(2))
        .await
        .expect("a return at once");
    assert!(r.is("rpc", "return"), "{r:?}");
    r
}

#[actix::test]
async fn register_call_unregister() {
    let b = common::start("").await;
    let mut inst = Tcp::connect(b.local_addr()).await;
    let r = register(
        &mut inst,
        &[
            ("feature", "svc:upper"),
            ("id", "upper-1"),
            ("max_inflight", "8"),
        ],
    )
    .await;
    assert!(r.is("rpc", "registered"), "{r:?}");
    assert_eq!(r.labels.get_str("feature"), Some("svc:upper"));
    assert_eq!(r.labels.get_str("group"), Some("svc:upper"));
    assert_eq!(r.labels.get_str("id"), Some("upper-1"));
    assert_eq!(r.labels.get_str("max_inflight"), Some("8"));

    let mut caller = Tcp::connect(b.local_addr()).await;
    caller.send(&call("1", "svc:upper", b"hello", false)).await;
    let c = next_call(&mut inst).await;
    assert_eq!(&c.payload[..], b"hello");
    assert!(c.labels.get_str("caller").unwrap().starts_with("client:"));
    inst.send(&answer(&c, b"HELLO")).await;
    let r = quick_return(&mut caller).await;
    assert_eq!(
        (r.labels.get_str("error"), &r.payload[..]),
        (None, &b"HELLO"[..])
    );

    inst.send(&Envelope::new("rpc", "unregister").with_label("feature", "svc:upper"))
        .await;
    let u = inst.next(Duration::from_secs(5)).await.unwrap();
    assert!(u.is("rpc", "unregistered"), "{u:?}");
    caller.send(&call("2", "svc:upper", b"again", false)).await;
    let r = quick_return(&mut caller).await;
    assert_eq!(
        r.labels.get_str("error"),
        Some("service svc:upper has no instance")
    );
    // Unregistering twice, and registering what is not a service, are refused.
    inst.send(&Envelope::new("rpc", "unregister").with_label("feature", "svc:upper"))
        .await;
    let e = inst.next(Duration::from_secs(5)).await.unwrap();
    assert!(e.is("rpc", "error"), "{e:?}");
    let e = register(&mut inst, &[("feature", "driver:x")]).await;
    assert_eq!(
        e.labels.get_str("error"),
        Some("rpc register needs a feature svc:<name>, not `driver:x`")
    );
    let e = register(&mut inst, &[("feature", "svc:a"), ("max_inflight", "0")]).await;
    assert!(e.is("rpc", "error"), "{e:?}");
    b.run_until(async {}).await;
}

#[actix::test]
async fn calls_go_to_the_instance_with_the_fewest_in_flight() {
    let b = common::start("").await;
    let mut a = instance(&b, "svc:work", &[]).await;
    let mut z = instance(&b, "svc:work", &[]).await;
    let mut caller = Tcp::connect(b.local_addr()).await;
    for i in 1..=4 {
        caller
            .send(&call(&i.to_string(), "svc:work", b"", false))
            .await;
    }
    // Equals take turns: two each.
    let (a1, a2) = (next_call(&mut a).await, next_call(&mut a).await);
    let (z1, z2) = (next_call(&mut z).await, next_call(&mut z).await);
    // z answers both: it has none in flight, a has two, so the next two go to z.
    z.send(&answer(&z1, b"z")).await;
    z.send(&answer(&z2, b"z")).await;
    quick_return(&mut caller).await;
    quick_return(&mut caller).await;
    caller.send(&call("5", "svc:work", b"", false)).await;
    caller.send(&call("6", "svc:work", b"", false)).await;
    let (z3, z4) = (next_call(&mut z).await, next_call(&mut z).await);
    assert!(a.next(Duration::from_millis(200)).await.is_none());
    for c in [&z3, &z4] {
        z.send(&answer(c, b"z")).await;
    }
    for c in [&a1, &a2] {
        a.send(&answer(c, b"a")).await;
    }
    for _ in 0..4 {
        assert_eq!(
            quick_return(&mut caller).await.labels.get_str("error"),
            None
        );
    }
    b.run_until(async {}).await;
}

#[actix::test]
async fn an_instance_that_leaves_fails_its_calls_at_once_or_moves_them_with_retry() {
    let b = common::start("").await;
    let mut a = instance(&b, "svc:job", &[]).await;
    let mut caller = Tcp::connect(b.local_addr()).await;
    caller.send(&call("plain", "svc:job", b"1", false)).await;
    caller.send(&call("idem", "svc:job", b"2", true)).await;
    next_call(&mut a).await;
    next_call(&mut a).await;
    let mut z = instance(&b, "svc:job", &[]).await;

    let left = Instant::now();
    drop(a);
    let r = quick_return(&mut caller).await;
    assert_eq!(r.labels.get_str("rpcID"), Some("plain"));
    assert_eq!(
        r.labels.get_str("error"),
        Some("service svc:job: its instance left before it answered")
    );
    assert!(left.elapsed() < Duration::from_secs(2));
    // The retried call went to the other instance, which answers it.
    let moved = next_call(&mut z).await;
    assert_eq!(moved.labels.get_str("rpcID"), Some("idem"));
    assert_eq!(&moved.payload[..], b"2");
    z.send(&answer(&moved, b"done")).await;
    let r = quick_return(&mut caller).await;
    assert_eq!(
        (r.labels.get_str("rpcID"), &r.payload[..]),
        (Some("idem"), &b"done"[..])
    );

    // With no other instance, a retried call fails at once too.
    caller.send(&call("last", "svc:job", b"3", true)).await;
    next_call(&mut z).await;
    z.send(&Envelope::new("rpc", "unregister").with_label("feature", "svc:job"))
        .await;
    let r = quick_return(&mut caller).await;
    assert_eq!(
        r.labels.get_str("error"),
        Some("service svc:job has no instance (its instance left before it answered)")
    );
    let s = &services(&b).await[0];
    assert_eq!(
        (
            s["calls"].as_u64(),
            s["errors"].as_u64(),
            s["retries"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    b.run_until(async {}).await;
}

/// Waits until the host has counted `n` forged returns.
async fn forged(b: &Broker, n: u64) {
    for _ in 0..500 {
        if b.driver_stats().await.rpc.forged_returns >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("forged returns never counted");
}

/// The `broker` feature's `services`, as JSON.
async fn services(b: &Broker) -> Vec<serde_json::Value> {
    let out = b
        .call("broker", "services", bytes::Bytes::new(), None)
        .await
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[actix::test]
async fn no_instance_and_a_full_instance_answer_at_once() {
    let b = common::start("").await;
    let mut caller = Tcp::connect(b.local_addr()).await;
    caller.send(&call("1", "svc:nobody", b"", false)).await;
    let r = quick_return(&mut caller).await;
    assert_eq!(
        r.labels.get_str("error"),
        Some("service svc:nobody has no instance")
    );

    let mut a = instance(&b, "svc:one", &[("max_inflight", "1")]).await;
    caller.send(&call("2", "svc:one", b"", false)).await;
    let first = next_call(&mut a).await;
    caller.send(&call("3", "svc:one", b"", false)).await;
    let r = quick_return(&mut caller).await;
    assert_eq!(r.labels.get_str("rpcID"), Some("3"));
    assert_eq!(
        r.labels.get_str("error"),
        Some("service svc:one is full: every instance has max_inflight calls in flight")
    );
    // Once answered, it takes calls again.
    a.send(&answer(&first, b"ok")).await;
    assert_eq!(
        quick_return(&mut caller).await.labels.get_str("rpcID"),
        Some("2")
    );
    caller.send(&call("4", "svc:one", b"", false)).await;
    next_call(&mut a).await;
    b.run_until(async {}).await;
}

#[actix::test]
async fn only_the_instance_a_call_went_to_may_answer_it() {
    let b = common::start("").await;
    let mut a = instance(&b, "svc:x", &[]).await;
    let mut thief = instance(&b, "svc:x", &[]).await;
    let mut caller = Tcp::connect(b.local_addr()).await;
    caller.send(&call("1", "svc:x", b"", false)).await;
    let c = next_call(&mut a).await;
    thief.send(&answer(&c, b"forged")).await;
    forged(&b, 1).await;
    a.send(&answer(&c, b"real")).await;
    let r = quick_return(&mut caller).await;
    assert_eq!(&r.payload[..], b"real");
    assert!(caller.next(Duration::from_millis(200)).await.is_none());
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_group_is_one_per_service_and_services_list_instances() {
    let b = common::start("").await;
    let a = instance(&b, "svc:g", &[("group", "blue"), ("id", "a")]).await;
    let mut other = Tcp::connect(b.local_addr()).await;
    let e = register(&mut other, &[("feature", "svc:g"), ("group", "green")]).await;
    assert_eq!(
        e.labels.get_str("error"),
        Some("service svc:g is served by group blue, not green")
    );
    let list = services(&b).await;
    assert_eq!(list[0]["name"], "svc:g");
    assert_eq!(list[0]["group"], "blue");
    let i = &list[0]["instances"][0];
    assert_eq!(i["id"], "a");
    assert_eq!(i["max_inflight"], 256);
    assert_eq!(i["peer"], a.s.local_addr().unwrap().to_string());
    b.run_until(async {}).await;
}

#[actix::test]
async fn registering_needs_a_serve_glob() {
    let users = common::auth::section(
        "",
        &[
            ("caller", "pw", "call = [\"svc:*\"]"),
            ("server", "pw", "serve = [\"svc:upper\"]"),
        ],
    );
    let b = common::start(&format!("\n{users}")).await;
    let login = |u: &'static str| common::auth::login_env(u, "pw", None);
    let mut caller = Tcp::connect(b.local_addr()).await;
    caller.send(&login("caller")).await;
    assert!(caller
        .next(Duration::from_secs(5))
        .await
        .unwrap()
        .is("auth", "ok"));
    let e = register(&mut caller, &[("feature", "svc:upper")]).await;
    assert!(e.is("rpc", "error"), "{e:?}");
    assert_eq!(
        e.labels.get_str("error"),
        Some("permission denied: serve feature `svc:upper`")
    );
    let mut server = Tcp::connect(b.local_addr()).await;
    server.send(&login("server")).await;
    let ok = server.next(Duration::from_secs(5)).await.unwrap();
    let perms: serde_json::Value = serde_json::from_slice(&ok.payload).unwrap();
    assert_eq!(perms["serve"][0], "svc:upper");
    let e = register(&mut server, &[("feature", "svc:other")]).await;
    assert!(e.is("rpc", "error"), "{e:?}");
    assert!(register(&mut server, &[("feature", "svc:upper")])
        .await
        .is("rpc", "registered"));
    caller.send(&call("1", "svc:upper", b"x", false)).await;
    let c = next_call(&mut server).await;
    server.send(&answer(&c, b"X")).await;
    assert_eq!(&quick_return(&mut caller).await.payload[..], b"X");
    b.run_until(async {}).await;
}

#[actix::test]
async fn max_inflight_is_held_to_the_configured_most() {
    let b = common::start("\n[drivers]\nservice_max_inflight = 16").await;
    let mut c = Tcp::connect(b.local_addr()).await;
    let e = register(&mut c, &[("feature", "svc:a"), ("max_inflight", "17")]).await;
    assert_eq!(
        e.labels.get_str("error"),
        Some("max_inflight `17` is not a number from 1 to 16 (drivers.service_max_inflight)")
    );
    let r = register(&mut c, &[("feature", "svc:a")]).await;
    assert_eq!(r.labels.get_str("max_inflight"), Some("16"));
    b.run_until(async {}).await;
}
