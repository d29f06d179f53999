//! The HTTP/JSON front end (actix-web): the same operations as the gRPC service, plus
//! `/healthz`, `/metrics` and the live page at `/`. Every response carries
//! `x-request-id`; every request runs in a `request{id method path}` span. With
//! `[auth]`, every call but `/healthz` and the page itself names a user
//! (`Authorization: Basic` or `Bearer`, see [`super::auth`]) and is held to its
//! permissions, like the broker port.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::{web, App, FromRequest, HttpRequest, HttpResponse, HttpServer, ResponseError};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info_span, Instrument};

use super::auth::GatewayAuth;
use super::backend::{Backend, NewTopic};
use super::cursor::Cursor;
use super::error::{ApiError, ErrorKind};
use super::metrics;
use super::sse::SseBody;
use crate::auth::Principal;

impl ResponseError for ApiError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.http_status())
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        if self.kind == ErrorKind::Unauthenticated {
            // Not `Basic`: a browser would answer that with its own password dialog
            // instead of the page's login form. Clients send credentials up front.
            r.insert_header(("www-authenticate", "Bearer realm=\"switchyard\""));
        }
        r.json(json!({"error": self.message, "kind": self.kind}))
    }
}

#[derive(Clone)]
pub(super) struct State {
    pub(super) backend: Backend,
    pub(super) auth: GatewayAuth,
}

/// The user a request's credentials name; a request without good ones is answered
/// 401 before its handler runs.
pub(super) struct Caller(pub(super) Arc<Principal>);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let auth = req.app_data::<web::Data<State>>().map(|s| s.auth.clone());
        let value = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let peer = req.peer_addr().map(|a| a.ip());
        let identity = req
            .conn_data::<crate::tls::incoming::HttpTlsIdentity>()
            .map(|i| i.0.clone());
        Box::pin(async move {
            let auth =
                auth.ok_or_else(|| ApiError::new(ErrorKind::Internal, "no gateway state"))?;
            auth.check(value.as_deref(), identity.as_deref(), peer, "http")
                .await
                .map(Caller)
        })
    }
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| format!("h{:x}", REQUEST_IDS.fetch_add(1, Ordering::Relaxed)))
}

/// Starts the HTTP server on `listener`; returns its handle and the future to run.
pub fn server(
    backend: Backend,
    auth: GatewayAuth,
    listener: std::net::TcpListener,
    grace: Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<actix_web::dev::Server> {
    let state = State { backend, auth };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(16 << 20))
            .app_data(
                web::JsonConfig::default()
                    .error_handler(|e, _| ApiError::invalid(format!("bad JSON body: {e}")).into()),
            )
            .wrap_fn(move |req, srv| {
                let id = request_id(&req);
                let span =
                    info_span!("request", id = %id, method = %req.method(), path = %req.path());
                let fut = actix_web::dev::Service::call(srv, req);
                async move {
                    let mut res: ServiceResponse = fut.await?.map_into_boxed_body();
                    if let Ok(v) = HeaderValue::from_str(&id) {
                        res.headers_mut()
                            .insert(HeaderName::from_static("x-request-id"), v);
                    }
                    tracing::debug!(status = res.status().as_u16(), "http request");
                    Ok(res)
                }
                .instrument(span)
            })
            .route("/", web::get().to(page))
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics_text))
            .route("/v1/topics", web::get().to(list_topics))
            .route("/v1/topics", web::post().to(create_topic))
            .route("/v1/topics/{topic}", web::delete().to(delete_topic))
            .route("/v1/topics/{topic}/messages", web::post().to(publish))
            .route(
                "/v1/topics/{topic}/messages",
                web::get().to(super::fetch::fetch),
            )
            .route("/v1/topics/{topic}/stream", web::get().to(stream))
            .route("/v1/drivers", web::get().to(list_drivers))
            .route(
                "/v1/drivers/{name}/rpc/{method}",
                web::post().to(call_driver),
            )
            .route("/v1/services", web::get().to(list_services))
            .route("/v1/tree", web::get().to(tree))
            .default_service(web::to(|| async {
                ApiError::new(ErrorKind::NotFound, "no such route").error_response()
            }))
    })
    .on_connect(crate::tls::incoming::http_identity)
    // A client that closes its side is gone: its stream ends and leaves its group at
    // once, instead of writing on into a dead socket (no HTTP/1.1 half-close).
    .h1_allow_half_closed(false)
    .workers(1)
    .disable_signals()
    .shutdown_timeout(grace.as_secs().max(1));
    // actix-http adds the ALPN names (h2, http/1.1) to the config it is given.
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, (*config).clone())?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(super::page())
}

async fn healthz(st: web::Data<State>) -> HttpResponse {
    if st.backend.is_ready() {
        HttpResponse::Ok().json(json!({"status": "serving"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "not serving"}))
    }
}

async fn metrics_text(st: web::Data<State>, c: Caller) -> Result<HttpResponse, ApiError> {
    st.auth.need(c.0.is_admin(), "metrics", "/metrics")?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics::render(&st.backend).await))
}

/// Only the topics the caller may read.
async fn list_topics(st: web::Data<State>, c: Caller) -> Result<HttpResponse, ApiError> {
    let mut topics = st.backend.list_topics().await?;
    topics.retain(|t| c.0.may_subscribe(&t.name));
    Ok(HttpResponse::Ok().json(json!({"topics": topics})))
}

async fn create_topic(
    st: web::Data<State>,
    c: Caller,
    body: web::Json<NewTopic>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    st.auth.need(c.0.is_admin(), "create", &b.name)?;
    let name = b.name.clone();
    st.backend.create_topic(b).await?;
    Ok(HttpResponse::Created().json(json!({"name": name})))
}

async fn delete_topic(
    st: web::Data<State>,
    c: Caller,
    topic: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = topic.into_inner();
    st.auth.need(c.0.is_admin(), "delete", &name)?;
    st.backend.delete_topic(name.clone()).await?;
    Ok(HttpResponse::Ok().json(json!({"deleted": name})))
}

#[derive(Deserialize, Default)]
struct PublishQuery {
    key: Option<String>,
    partition: Option<u32>,
    msg_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    value: Option<Value>,
    values: Option<Vec<Value>>,
    key: Option<String>,
    partition: Option<u32>,
    msg_id: Option<String>,
}

fn value_bytes(v: Value) -> Bytes {
    match v {
        Value::String(s) => Bytes::from(s),
        other => Bytes::from(other.to_string()),
    }
}

/// JSON (`{"value": …}` or `{"values": [...]}`, strings as they are, anything else as
/// JSON text), or any other content type as one raw record.
async fn publish(
    st: web::Data<State>,
    c: Caller,
    req: HttpRequest,
    topic: web::Path<String>,
    q: web::Query<PublishQuery>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    st.auth.need(c.0.may_publish(&topic), "publish", &topic)?;
    let json_body = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let q = q.into_inner();
    let (values, key, partition, msg_id) = if json_body {
        let b: PublishBody = serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("bad JSON body: {e}")))?;
        let mut values: Vec<Bytes> = b
            .values
            .unwrap_or_default()
            .into_iter()
            .map(value_bytes)
            .collect();
        if let Some(v) = b.value {
            values.insert(0, value_bytes(v));
        }
        (
            values,
            b.key.or(q.key),
            b.partition.or(q.partition),
            b.msg_id.or(q.msg_id),
        )
    } else {
        (vec![body], q.key, q.partition, q.msg_id)
    };
    let p = st
        .backend
        .publish(
            topic.into_inner(),
            key.map(Bytes::from),
            partition,
            values,
            msg_id.map(Bytes::from),
        )
        .await?;
    let mut answer =
        json!({"partition": p.partition, "first_offset": p.first_offset, "count": p.count});
    if p.duplicate {
        answer["duplicate"] = json!(true);
    }
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Deserialize)]
struct StreamQuery {
    partition: Option<u32>,
    #[serde(default)]
    from: String,
    group: Option<String>,
}

/// Server-sent events (see [`super::sse`]); `Last-Event-ID` resumes after its position.
async fn stream(
    st: web::Data<State>,
    c: Caller,
    req: HttpRequest,
    topic: web::Path<String>,
    q: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    st.auth
        .need(c.0.may_subscribe(&topic), "subscribe", &topic)?;
    let q = q.into_inner();
    let mut after = match req.headers().get("last-event-id") {
        Some(v) => Cursor::parse(
            v.to_str()
                .map_err(|_| ApiError::invalid("Last-Event-ID is not text"))?,
        )?,
        None => Cursor::default(),
    };
    if let Some(p) = q.partition {
        after.keep_only(p);
    }
    let rx = st
        .backend
        .subscribe(
            topic.into_inner(),
            q.partition,
            q.from,
            q.group,
            after.clone(),
        )
        .await?;
    let body = SseBody::new(rx, after, st.backend.stream_keepalive);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(body))
}

async fn list_drivers(st: web::Data<State>, c: Caller) -> Result<HttpResponse, ApiError> {
    st.auth.need(c.0.is_admin(), "drivers", "/v1/drivers")?;
    Ok(HttpResponse::Ok().json(json!({"drivers": st.backend.list_drivers().await?})))
}

async fn list_services(st: web::Data<State>, c: Caller) -> Result<HttpResponse, ApiError> {
    st.auth.need(c.0.is_admin(), "services", "/v1/services")?;
    Ok(HttpResponse::Ok().json(json!({"services": st.backend.list_services().await?})))
}

#[derive(Deserialize)]
struct CallQuery {
    timeout_ms: Option<u64>,
}

/// The body is the call's params; the answer is the driver's result, as it is.
async fn call_driver(
    st: web::Data<State>,
    c: Caller,
    path: web::Path<(String, String)>,
    q: web::Query<CallQuery>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let (name, method) = path.into_inner();
    let feature = format!("driver:{name}");
    st.auth.need(c.0.may_call(&feature), "call", &feature)?;
    let out = st
        .backend
        .call_driver(name, method, body, q.timeout_ms.map(Duration::from_millis))
        .await?;
    let ct = if serde_json::from_slice::<Value>(&out).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Ok(HttpResponse::Ok().content_type(ct).body(out))
}

async fn tree(st: web::Data<State>, c: Caller) -> Result<HttpResponse, ApiError> {
    st.auth.need(c.0.is_admin(), "tree", "/v1/tree")?;
    Ok(HttpResponse::Ok().json(st.backend.tree()))
}
