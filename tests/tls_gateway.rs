//! The gateway over TLS against the real broker on port 0: HTTPS with a raw HTTP/1.1
//! request over tokio-rustls, gRPC with tonic's TLS client, mutual TLS on both, a
//! plaintext client refused, and a certificate reload seen by new connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::http::{head, parse, Reply};
use common::tls::{client_config, connect, server_cert, Ca, Leaf, Pki};
use switchyard::Broker;
use switchyard_actors::gateway::pb::broker_client::BrokerClient;
use switchyard_actors::gateway::pb::ListTopicsRequest;
use switchyard_actors::tls::{FailReason, TlsPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

async fn start(pki: &Pki, mutual: bool) -> (Broker, tempfile::TempDir, switchyard::Config) {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("tls = true\n{}", pki.section(mutual));
    let config = common::gateway::gateway_config(dir.path(), &extra);
    (switchyard::start(&config).await.unwrap(), dir, config)
}

async fn https_get(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>, path: &str) -> Reply {
    let mut s = connect(addr, cfg).await.unwrap();
    s.write_all(head("GET", path, &[], 0).as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    // actix may end the TLS stream without close_notify; what was read is the answer.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("answered in time");
    parse(&raw)
}

async fn grpc(b: &Broker, ca: &Ca, client: Option<&Leaf>) -> Result<BrokerClient<Channel>, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(l) = client {
        tls = tls.identity(Identity::from_pem(&l.cert_pem, &l.key_pem));
    }
    let ch = Channel::from_shared(format!("https://{}", b.gateway().grpc.unwrap()))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(BrokerClient::new(ch))
}

#[actix::test]
async fn https_and_grpc_over_tls() {
    let pki = Pki::new();
    let (b, _dir, _) = start(&pki, false).await;
    let http = b.gateway().http.unwrap();
    let cfg = client_config(&pki.ca, None);
    let r = https_get(http, cfg.clone(), "/healthz").await;
    assert_eq!(r.status, 200, "{}", r.text());

    let mut c = grpc(&b, &pki.ca, None).await.unwrap();
    c.list_topics(ListTopicsRequest {}).await.unwrap();
    assert_eq!(b.stats().tls.handshakes(TlsPort::Grpc), 1);

    let m = https_get(http, cfg, "/metrics").await.text();
    assert!(
        m.contains("switchyard_tls_handshakes_total{port=\"grpc\"} 1"),
        "{m}"
    );
    assert!(m.contains(
        "switchyard_tls_handshake_failures_total{port=\"broker\",reason=\"plaintext\"} 0"
    ));

    // A plaintext HTTP request gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(http).await.unwrap();
    plain
        .write_all(head("GET", "/healthz", &[], 0).as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut raw)).await;
    assert!(!raw.starts_with(b"HTTP/1.1 200"), "{raw:?}");
    // gRPC without TLS on the TLS port: refused, and counted.
    let plain = Channel::from_shared(format!("http://{}", b.gateway().grpc.unwrap()))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        assert!(BrokerClient::new(ch)
            .list_topics(ListTopicsRequest {})
            .await
            .is_err());
    }
    common::eventually("the plaintext grpc client counted", || {
        b.stats().tls.failures(TlsPort::Grpc, FailReason::Plaintext) == 1
    })
    .await;
}

#[actix::test]
async fn mutual_tls_on_the_gateway() {
    let pki = Pki::new();
    let (b, _dir, _) = start(&pki, true).await;
    let ops = pki.ca.client("ops", false);
    let mut c = grpc(&b, &pki.ca, Some(&ops)).await.unwrap();
    c.list_topics(ListTopicsRequest {}).await.unwrap();
    let refused = match grpc(&b, &pki.ca, None).await {
        Err(_) => true,
        Ok(mut c) => c.list_topics(ListTopicsRequest {}).await.is_err(),
    };
    assert!(refused, "a client without a certificate got an answer");
    common::eventually("no_client_cert counted", || {
        b.stats()
            .tls
            .failures(TlsPort::Grpc, FailReason::NoClientCert)
            == 1
    })
    .await;

    let http = b.gateway().http.unwrap();
    let r = https_get(http, client_config(&pki.ca, Some(&ops)), "/healthz").await;
    assert_eq!(r.status, 200);
    if let Ok(mut s) = connect(http, client_config(&pki.ca, None)).await {
        let _ = s
            .write_all(head("GET", "/healthz", &[], 0).as_bytes())
            .await;
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
        assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    }
}

#[actix::test]
async fn the_gateway_picks_up_reloaded_certificates() {
    let pki = Pki::new();
    let (mut b, _dir, config) = start(&pki, false).await;
    let ca2 = Ca::new("second CA");
    let next = ca2.server("server-two");
    std::fs::write(&pki.cert, &next.cert_pem).unwrap();
    std::fs::write(&pki.key, &next.key_pem).unwrap();
    b.reload_with(config).await.unwrap();
    let http = b.gateway().http.unwrap();
    let s = connect(http, client_config(&ca2, None)).await.unwrap();
    assert_eq!(server_cert(&s), next.cert);
    let mut c = grpc(&b, &ca2, None).await.unwrap();
    c.list_topics(ListTopicsRequest {}).await.unwrap();
}
