//! The gRPC front end's accepted TLS streams: each accepted socket is handshaken on a
//! task of its own (a slow peer delays nobody), counted in the TLS metrics, and handed
//! to tonic as a [`TlsIo`], whose connect info ([`GrpcPeer`]) carries the peer and the
//! verified client certificate's name into every request's extensions. HTTPS
//! connections get the same name through [`http_identity`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::identity;
use super::stats::{FailReason, TlsPort};
use crate::stats::BrokerStats;

/// How long a peer may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a gRPC connection (a request extension).
#[derive(Debug, Clone)]
pub struct GrpcPeer {
    pub remote: SocketAddr,
    /// The verified client certificate's CN (or first DNS / e-mail SAN), under mTLS.
    pub tls_identity: Option<String>,
}

/// A handshaken connection, as tonic serves it.
#[derive(Debug)]
pub struct TlsIo {
    stream: TlsStream<TcpStream>,
    peer: GrpcPeer,
}

impl tonic::transport::server::Connected for TlsIo {
    type ConnectInfo = GrpcPeer;

    fn connect_info(&self) -> GrpcPeer {
        self.peer.clone()
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The verified client certificate's name on an HTTPS connection (mutual TLS), in
/// every request's connection data: `req.conn_data::<HttpTlsIdentity>()`. The hook for
/// the gateway's authentication.
#[derive(Debug, Clone)]
pub struct HttpTlsIdentity(pub String);

/// actix-web's `on_connect`: notes the client certificate's name of a TLS connection.
pub fn http_identity(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let name = conn
        .downcast_ref::<Tls>()
        .and_then(|t| t.get_ref().1.peer_certificates())
        .and_then(|c| c.first())
        .and_then(|c| identity::of_certificate(c));
    if let Some(n) = name {
        ext.insert(HttpTlsIdentity(n));
    }
}

/// The TLS connections accepted on `listener`, until the stream is dropped.
pub fn accept(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    stats: Arc<BrokerStats>,
) -> ReceiverStream<io::Result<TlsIo>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = tx.closed() => break,
                r = listener.accept() => r,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, mostly: retrying at once would spin.
                    warn!(error = %e, "grpc accept failed, backing off");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (tx, acceptor, stats) = (tx.clone(), acceptor.clone(), stats.clone());
            tokio::spawn(async move {
                let hs = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, stream));
                let failed = match hs.await {
                    Ok(Ok(tls)) => {
                        stats.tls.handshake_done(TlsPort::Grpc);
                        let tls_identity = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| identity::of_certificate(c));
                        let peer = GrpcPeer {
                            remote,
                            tls_identity,
                        };
                        let _ = tx.send(Ok(TlsIo { stream: tls, peer })).await;
                        return;
                    }
                    Ok(Err(f)) => f,
                    Err(_) => (FailReason::Eof, "handshake timed out".to_string()),
                };
                stats.tls.handshake_failed(TlsPort::Grpc, failed.0);
                log_failure(TlsPort::Grpc, remote, failed.0, &failed.1);
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Logs a failed handshake: the peer and the reason (a peer that only connected and
/// left is not worth a warning).
pub fn log_failure(port: TlsPort, peer: SocketAddr, reason: FailReason, detail: &str) {
    let port = port.name();
    match reason {
        FailReason::Plaintext => {
            warn!(port = %port, peer = %peer, "plaintext client on a TLS port, closing")
        }
        FailReason::Eof => {
            debug!(port = %port, peer = %peer, reason = %reason.label(), error = %detail, "tls handshake not finished, closing")
        }
        _ => {
            warn!(port = %port, peer = %peer, reason = %reason.label(), error = %detail, "tls handshake failed, closing")
        }
    }
}

async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
) -> Result<TlsStream<TcpStream>, (FailReason, String)> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) => return Err((FailReason::Eof, "closed before the handshake".into())),
        Ok(_) if first[0] != 0x16 => {
            return Err((
                FailReason::Plaintext,
                format!(
                    "first byte 0x{:02x} is not a TLS handshake record",
                    first[0]
                ),
            ))
        }
        Ok(_) => {}
        Err(e) => return Err((FailReason::Eof, e.to_string())),
    }
    acceptor.accept(stream).await.map_err(|e| {
        let reason = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .map_or(FailReason::Protocol, FailReason::of);
        (reason, e.to_string())
    })
}
