//! TLS on the broker port against the real broker on port 0, with certificates made
//! here and tokio-rustls clients: ping, publish and subscribe, mutual TLS naming the
//! client, refusals (no certificate, untrusted, expired, plaintext), reload on SIGHUP
//! with open connections kept, and the config and start-up errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use common::tls::{client_config, connect, next_env, server_cert, try_ping, Ca, Pki};
use common::{topic_env, Log};
use switchyard::Broker;
use switchyard_actors::tls::{FailReason, TlsPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(pki: &Pki, mutual: bool) -> Broker {
    let extra = format!("tls = true\n{}", pki.section(mutual));
    switchyard::start(&common::config(&extra)).await.unwrap()
}

fn failures(b: &Broker, why: FailReason) -> u64 {
    b.stats().tls.failures(TlsPort::Broker, why)
}

#[actix_rt::test]
async fn ping_publish_and_subscribe_over_tls() {
    let pki = Pki::new();
    let b = start(&pki, false).await;
    let cfg = client_config(&pki.ca, None);
    let mut p = connect(b.local_addr(), cfg.clone()).await.unwrap();
    try_ping(&mut p).await.unwrap();
    // Large enough to span many TLS records both ways.
    let big = vec![b'x'; 300_000];
    for (i, payload) in [&b"hello"[..], &big].into_iter().enumerate() {
        let id = i.to_string();
        p.write_all(&topic_env(
            "publish",
            &[("topic", "secure"), ("id", &id)],
            payload,
        ))
        .await
        .unwrap();
    }
    let mut pbuf = BytesMut::new();
    for _ in 0..2 {
        let ack = next_env(&mut p, &mut pbuf).await;
        assert!(ack.is("topic", "ack"), "{ack:?}");
    }
    let mut s = connect(b.local_addr(), cfg).await.unwrap();
    s.write_all(&topic_env(
        "subscribe",
        &[
            ("topic", "secure"),
            ("from", "earliest"),
            ("sub", "s"),
            ("credit", "10"),
        ],
        b"",
    ))
    .await
    .unwrap();
    let mut sbuf = BytesMut::new();
    assert!(next_env(&mut s, &mut sbuf).await.is("topic", "subscribed"));
    let d = next_env(&mut s, &mut sbuf).await;
    assert_eq!(&d.payload[..], b"hello");
    let d = next_env(&mut s, &mut sbuf).await;
    assert_eq!(d.payload.len(), big.len());
    assert!(d.payload.iter().all(|&c| c == b'x'));
    assert_eq!(b.stats().tls.handshakes(TlsPort::Broker), 2);
    // Without a client certificate required, nobody is named.
    assert!(
        b.tree().render().contains("dipper tls"),
        "{}",
        b.tree().render()
    );
}

#[actix_rt::test]
async fn mutual_tls_names_the_client() {
    let pki = Pki::new();
    let b = start(&pki, true).await;
    let ops = pki.ca.client("ops", false);
    let mut c = connect(b.local_addr(), client_config(&pki.ca, Some(&ops)))
        .await
        .unwrap();
    try_ping(&mut c).await.unwrap();
    let tree = b.tree().render();
    assert!(tree.contains("tls identity=ops"), "{tree}");
}

/// A refused client: under TLS 1.3 its own handshake may finish before the server
/// has checked its certificate, so the refusal shows on the first exchange.
async fn refused(b: &Broker, cfg: std::sync::Arc<rustls::ClientConfig>) {
    if let Ok(mut c) = connect(b.local_addr(), cfg).await {
        assert!(try_ping(&mut c).await.is_err(), "the broker answered");
    }
}

#[actix_rt::test]
async fn mutual_tls_refuses_missing_untrusted_and_expired_certificates() {
    let (log, _g) = Log::capture();
    let pki = Pki::new();
    let b = start(&pki, true).await;
    refused(&b, client_config(&pki.ca, None)).await;
    common::eventually("no_client_cert counted", || {
        failures(&b, FailReason::NoClientCert) == 1
    })
    .await;
    let stranger = Ca::new("someone else's CA").client("ops", false);
    refused(&b, client_config(&pki.ca, Some(&stranger))).await;
    common::eventually("unknown_issuer counted", || {
        failures(&b, FailReason::UnknownIssuer) == 1
    })
    .await;
    let old = pki.ca.client("ops", true);
    refused(&b, client_config(&pki.ca, Some(&old))).await;
    common::eventually("expired counted", || failures(&b, FailReason::Expired) == 1).await;
    let line = log
        .wait_for(&["tls handshake failed", "reason=expired", "peer=127.0.0.1"])
        .await;
    assert!(line.contains("WARN"), "{line}");
    assert_eq!(b.stats().tls.handshakes(TlsPort::Broker), 0);
    // A good certificate still gets in.
    let ok = pki.ca.client("ops", false);
    let mut c = connect(b.local_addr(), client_config(&pki.ca, Some(&ok)))
        .await
        .unwrap();
    try_ping(&mut c).await.unwrap();
}

#[actix_rt::test]
async fn a_client_that_does_not_trust_the_server_is_counted() {
    let pki = Pki::new();
    let b = start(&pki, false).await;
    let other = Ca::new("not the broker's CA");
    assert!(connect(b.local_addr(), client_config(&other, None))
        .await
        .is_err());
    common::eventually("peer_alert counted", || {
        failures(&b, FailReason::PeerAlert) == 1
    })
    .await;
}

#[actix_rt::test]
async fn a_plaintext_client_is_closed_with_a_log_line() {
    let (log, _g) = Log::capture();
    let pki = Pki::new();
    let b = start(&pki, false).await;
    let mut c = common::connect(b.local_addr()).await;
    let local = c.local_addr().unwrap();
    c.write_all(common::PING).await.unwrap();
    // Nothing but the close: no plaintext envelope, no alert to a non-TLS peer that
    // it could mistake for an answer.
    let mut got = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), c.read_to_end(&mut got))
        .await
        .expect("closed in time");
    assert!(!got.starts_with(b"state"), "{got:?}");
    let line = log
        .wait_for(&["plaintext client on a TLS port", &local.to_string()])
        .await;
    assert!(line.contains("WARN"), "{line}");
    assert_eq!(failures(&b, FailReason::Plaintext), 1);
}

#[actix_rt::test]
async fn reload_swaps_certificates_and_keeps_open_connections() {
    let (log, _g) = Log::capture();
    let pki = Pki::new();
    let extra = format!("tls = true\n{}", pki.section(false));
    let config = common::config(&extra);
    let mut b = switchyard::start(&config).await.unwrap();
    let mut open = connect(b.local_addr(), client_config(&pki.ca, None))
        .await
        .unwrap();
    try_ping(&mut open).await.unwrap();

    // New files at the same paths, from a new CA.
    let ca2 = Ca::new("second CA");
    let next = ca2.server("server-two");
    std::fs::write(&pki.cert, &next.cert_pem).unwrap();
    std::fs::write(&pki.key, &next.key_pem).unwrap();
    // What SIGHUP runs once it has read the config file again.
    b.reload_with(config.clone()).await.unwrap();
    log.wait_for(&["tls certificates reloaded"]).await;

    try_ping(&mut open).await.unwrap();
    let mut fresh = connect(b.local_addr(), client_config(&ca2, None))
        .await
        .unwrap();
    assert_eq!(server_cert(&fresh), next.cert);
    try_ping(&mut fresh).await.unwrap();
    assert!(connect(b.local_addr(), client_config(&pki.ca, None))
        .await
        .is_err());

    // A broken key is refused, naming the key, and the certificates in force stay.
    std::fs::write(
        &pki.key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = b.reload_tls(&config).unwrap_err();
    assert!(e.contains("tls.key"), "{e}");
    assert!(!e.contains("AAAA"), "the file's contents leaked: {e}");
    log.wait_for(&["tls reload failed, the certificates in force stay"])
        .await;
    let mut again = connect(b.local_addr(), client_config(&ca2, None))
        .await
        .unwrap();
    try_ping(&mut again).await.unwrap();
    try_ping(&mut open).await.unwrap();
}

#[test]
fn tls_without_a_tls_section_is_a_config_error() {
    for (text, key) in [
        ("[broker]\ntls = true\n", "broker.tls"),
        (
            "[gateway]\nhttp_bind = \"127.0.0.1:0\"\ntls = true\n",
            "gateway.tls",
        ),
    ] {
        let e = switchyard::Config::parse(text, "x.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.to_string().contains("[tls]"), "{e}");
    }
}

#[actix_rt::test]
async fn unusable_files_stop_the_start_naming_the_key() {
    let pki = Pki::new();
    let missing = pki.dir.path().join("nope.pem");
    let cases = [
        (
            format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                missing.display(),
                pki.key.display()
            ),
            "tls.cert: cannot read",
        ),
        (
            format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                pki.key.display(),
                pki.key.display()
            ),
            "tls.cert",
        ),
        (
            format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                pki.cert.display(),
                pki.cert.display()
            ),
            "tls.key",
        ),
        (
            format!(
                "cert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
                pki.cert.display(),
                pki.key.display(),
                missing.display()
            ),
            "tls.client_ca: cannot read",
        ),
    ];
    for (section, want) in cases {
        let config = common::config(&format!("tls = true\n[tls]\n{section}"));
        let e = switchyard::start(&config).await.unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
        assert!(!e.contains("BEGIN"), "the file's contents leaked: {e}");
    }
    // A key that belongs to another certificate.
    let other = pki.ca.server("other").write(pki.dir.path(), "other");
    let config = common::config(&format!(
        "tls = true\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        pki.cert.display(),
        other.1.display()
    ));
    let e = switchyard::start(&config).await.unwrap_err().to_string();
    assert!(
        e.contains("tls.key") && e.contains("does not fit tls.cert"),
        "{e}"
    );
}
