//! The gateway: the broker's operations over HTTP/JSON (actix-web) and gRPC (tonic),
//! both served from the same actor messages ([`backend::Backend`]), with no loopback hop.
//! Also `/healthz`, `/metrics` (Prometheus text) and a live actor-tree page at `/`.
//!
//! Modules:
//! - [`backend`]: the operations, each one or two actor messages under a deadline.
//! - [`auth`]: [`auth::GatewayAuth`], the `[auth]` users over `Authorization`.
//! - [`base64`]: standard base64 (binary record values, `Authorization: Basic`).
//! - [`http`]: the actix-web routes, request ids, JSON errors.
//! - `fetch`: `GET /v1/topics/{topic}/messages`, one partition or all of them.
//! - [`grpc`]: `switchyard.v1.Broker` (from `actors/proto/switchyard.proto`) and health.
//! - [`stream`]: [`stream::StreamSink`], one actor per live subscription stream;
//!   [`stream_rx`]: its client's end, polled by the server that writes the stream.
//! - [`sse`]: a stream as server-sent events (ids, `Last-Event-ID`, keep-alives).
//! - [`cursor`]: a stream's position, `partition:offset[,…]`.
//! - [`metrics`]: the Prometheus rendering; `dedup_metrics`: the `msg_id` index's part.
//! - [`error`]: [`error::ApiError`], mapped to HTTP statuses and gRPC codes.

pub mod auth;
pub mod backend;
pub mod base64;
pub mod cursor;
mod dedup_metrics;
pub mod error;
mod fetch;
pub mod grpc;
pub mod http;
pub mod metrics;
mod service_metrics;
pub mod sse;
pub mod stream;
pub mod stream_rx;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};
use switchyard_codecs::record::Record;
use tokio::sync::oneshot;
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::supervisor::{ChildContext, ChildGuard, ChildSpec, Shutdown};
use crate::tree::TreeEntry;
pub use backend::Backend;

/// The generated `switchyard.v1` messages, client and server.
pub mod pb {
    #![allow(missing_debug_implementations, clippy::all, clippy::unwrap_used)]
    tonic::include_proto!("switchyard.v1");
}

/// The page at `/`, as shipped; [`page`] is what is served.
pub const PAGE: &str = include_str!("page.html");

/// The page at `/` with this build's version under its title.
pub fn page() -> &'static str {
    static PAGE_WITH_VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PAGE_WITH_VERSION.get_or_init(|| {
        PAGE.replacen(
            "<h1>switchyard</h1>",
            &format!(
                "<h1>switchyard <small id=\"version\">{}</small></h1>",
                crate::build_info::line()
            ),
            1,
        )
    })
}

/// The gRPC service name, for health.
pub const SERVICE: &str = "switchyard.v1.Broker";

/// `[gateway]`.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// `[auth]`, as for the broker port (`None`: everyone may do everything).
    pub auth: Option<crate::auth::Auth>,
    /// How long a draining server waits for open requests and streams.
    pub grace: Duration,
    /// Bytes of records one stream may hold that its client has not read.
    pub stream_buffer_bytes: u64,
    /// An SSE stream idle this long writes a keep-alive comment; gRPC pings as often.
    pub stream_keepalive: Duration,
    /// HTTPS and gRPC over TLS, with these (reloadable) certificates.
    pub tls: Option<Arc<crate::tls::TlsCerts>>,
}

/// A record as JSON: the value as text when it is UTF-8, else in `value_base64`.
pub fn record_json(topic: &str, partition: u32, r: &Record) -> Value {
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
    let mut v = json!({
        "topic": topic, "partition": partition, "offset": r.offset, "timestamp_ms": r.timestamp_ms,
        "key": r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
    });
    match text(&r.value) {
        Some(s) => v["value"] = Value::String(s),
        None => v["value_base64"] = Value::String(base64::encode(&r.value)),
    }
    if !r.labels.is_empty() {
        let labels: serde_json::Map<String, Value> = r
            .labels
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::String(String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect();
        v["labels"] = Value::Object(labels);
    }
    v
}

/// The gateway actor: runs the two servers and stops them at shutdown.
pub struct Gateway {
    settings: GatewaySettings,
    backend: Backend,
    /// Shared by restarts, so verified credentials stay remembered.
    auth: auth::GatewayAuth,
    http: Option<std::net::TcpListener>,
    grpc: Option<std::net::TcpListener>,
    http_handle: Option<actix_web::dev::ServerHandle>,
    grpc_stop: Option<oneshot::Sender<()>>,
    grpc_done: Option<oneshot::Receiver<()>>,
    health: Option<tonic_health::server::HealthReporter>,
    /// Its place in the actor tree (dropping it removes the node).
    _entry: TreeEntry,
    guard: ChildGuard,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("settings", &self.settings)
            .finish()
    }
}

fn clone_listener(
    l: &Option<Arc<std::net::TcpListener>>,
) -> Result<Option<std::net::TcpListener>, String> {
    l.as_ref()
        .map(|l| l.try_clone().map_err(|e| e.to_string()))
        .transpose()
}

impl Gateway {
    /// A supervisor child spec over sockets bound at start-up (shared by restarts).
    pub fn spec(
        settings: GatewaySettings,
        backend: Backend,
        http: Option<std::net::TcpListener>,
        grpc: Option<std::net::TcpListener>,
    ) -> ChildSpec {
        let (http, grpc) = (http.map(Arc::new), grpc.map(Arc::new));
        let gw_auth = auth::GatewayAuth::new(settings.auth.clone(), backend.stats.clone());
        ChildSpec::new("gateway", "gateway", move |cx: ChildContext| {
            let mut detail = Vec::new();
            for (what, l) in [("http", &http), ("grpc", &grpc)] {
                if let Some(a) = l.as_ref().and_then(|l| l.local_addr().ok()) {
                    detail.push(format!("{what} {a}"));
                }
            }
            let entry = cx.tree.register(Some(cx.parent), "gateway", "gateway");
            entry.set_detail(detail.join(", "));
            Ok(Gateway {
                settings: settings.clone(),
                backend: backend.clone(),
                auth: gw_auth.clone(),
                http: clone_listener(&http)?,
                grpc: clone_listener(&grpc)?,
                http_handle: None,
                grpc_stop: None,
                grpc_done: None,
                health: None,
                _entry: entry,
                guard: cx.guard,
            }
            .start()
            .recipient())
        })
    }

    fn start_http(&mut self) {
        let Some(l) = self.http.take() else { return };
        let addr = l.local_addr().ok();
        let tls = match self.tls_config(&[]) {
            Ok(t) => t,
            Err(e) => return warn!(error = %e, "http gateway cannot start"),
        };
        match http::server(
            self.backend.clone(),
            self.auth.clone(),
            l,
            self.settings.grace,
            tls,
        ) {
            Ok(server) => {
                self.http_handle = Some(server.handle());
                actix::spawn(async move {
                    if let Err(e) = server.await {
                        warn!(error = %e, "http gateway stopped with an error");
                    }
                });
                info!(
                    addr = addr.map(tracing::field::display),
                    tls = self.settings.tls.is_some(),
                    "http gateway listening"
                );
            }
            Err(e) => warn!(error = %e, "http gateway cannot start"),
        }
    }

    fn start_grpc(&mut self, ctx: &mut Context<Self>) {
        let Some(l) = self.grpc.take() else { return };
        let addr = l.local_addr().ok();
        let listener = match l
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(l))
        {
            Ok(l) => l,
            Err(e) => return warn!(error = %e, "grpc gateway cannot start"),
        };
        // gRPC needs HTTP/2, which TLS clients ask for by ALPN.
        let tls = match self.tls_config(&[b"h2"]) {
            Ok(t) => t,
            Err(e) => return warn!(error = %e, "grpc gateway cannot start"),
        };
        let (reporter, health_service) = tonic_health::server::health_reporter();
        self.health = Some(reporter);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        self.grpc_stop = Some(stop_tx);
        self.grpc_done = Some(done_rx);
        let backend = self.backend.clone();
        let auth = self.auth.clone();
        actix::spawn(async move {
            let stop = async {
                let _ = stop_rx.await;
            };
            if let Err(e) = grpc::serve(backend, auth, listener, health_service, stop, tls).await {
                warn!(error = %e, "grpc gateway stopped with an error");
            }
            let _ = done_tx.send(());
        });
        // Health follows readiness: serving once the broker is up, not while it drains.
        ctx.run_interval(Duration::from_millis(50), |act, _| act.report_health());
        info!(
            addr = addr.map(tracing::field::display),
            tls = self.settings.tls.is_some(),
            "grpc gateway listening"
        );
    }

    /// The TLS server config of one front end, when `gateway.tls` is on.
    fn tls_config(
        &self,
        alpn: &[&[u8]],
    ) -> Result<Option<Arc<rustls::ServerConfig>>, rustls::Error> {
        self.settings
            .tls
            .as_ref()
            .map(|c| c.server_config(alpn))
            .transpose()
    }

    fn report_health(&self) {
        let Some(h) = self.health.clone() else { return };
        let status = if self.backend.is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        actix::spawn(async move {
            let mut h = h;
            h.set_service_status(SERVICE, status).await;
            h.set_service_status("", status).await;
        });
    }
}

impl Actor for Gateway {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.start_http();
        self.start_grpc(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.guard.stopped();
    }
}

impl Handler<Shutdown> for Gateway {
    type Result = ResponseActFuture<Self, ()>;

    /// Stops accepting on both front ends, ends every stream, and waits for open
    /// requests to finish (up to the grace period).
    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.backend
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.report_health();
        let http = self.http_handle.take();
        let grpc_stop = self.grpc_stop.take();
        let grpc_done = self.grpc_done.take();
        let grace = self.settings.grace;
        Box::pin(
            async move {
                if let Some(stop) = grpc_stop {
                    let _ = stop.send(());
                }
                let both = async {
                    if let Some(h) = http {
                        h.stop(true).await;
                    }
                    if let Some(done) = grpc_done {
                        let _ = done.await;
                    }
                };
                if tokio::time::timeout(grace, both).await.is_err() {
                    warn!("gateway: grace period over with requests still open");
                }
                info!("gateway stopped");
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.stop()),
        )
    }
}
