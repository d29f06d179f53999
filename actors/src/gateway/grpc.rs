//! The gRPC front end (tonic): `switchyard.v1.Broker` and the standard health service.
//! With `[auth]`, every call but health names a user in `authorization` metadata
//! (`Basic` or `Bearer`, as over HTTP: see [`super::auth`]) and is held to its
//! permissions; every response carries `x-request-id` metadata.
// tonic's own signatures return `Result<_, Status>`, a large error by clippy's measure.
#![allow(clippy::result_large_err)]

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use tracing::{info_span, Instrument};

use super::auth::GatewayAuth;
use super::backend::{Backend, NewTopic};
use super::cursor::Cursor;
use super::pb::broker_server::{Broker, BrokerServer};
use super::pb::*;
use super::stream_rx::Delivered;
use crate::auth::Principal;

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, Clone)]
pub struct Service {
    pub backend: Backend,
    pub auth: GatewayAuth,
}

impl Service {
    /// The user `req`'s `authorization` metadata names (`UNAUTHENTICATED` if none).
    async fn caller<T>(&self, req: &Request<T>) -> Result<Arc<Principal>, Status> {
        let value = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let tls = req.extensions().get::<crate::tls::incoming::GrpcPeer>();
        let identity = tls.and_then(|p| p.tls_identity.clone());
        let peer = tls
            .map(|p| p.remote.ip())
            .or_else(|| req.remote_addr().map(|a| a.ip()));
        Ok(self
            .auth
            .check(value.as_deref(), identity.as_deref(), peer, "grpc")
            .await?)
    }
}

fn with_id<T>(id: &str, body: T) -> Response<T> {
    let mut r = Response::new(body);
    if let Ok(v) = MetadataValue::try_from(id) {
        r.metadata_mut().insert("x-request-id", v);
    }
    r
}

fn request_id<T>(req: &Request<T>) -> String {
    req.metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| format!("g{:x}", REQUEST_IDS.fetch_add(1, Ordering::Relaxed)))
}

fn to_record(d: Delivered) -> Record {
    Record {
        topic: d.topic,
        partition: d.partition,
        offset: d.record.offset,
        timestamp_ms: d.record.timestamp_ms,
        key: d.record.key.map(|k| k.to_vec()),
        value: d.record.value.to_vec(),
        labels: d
            .record
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect(),
    }
}

/// Runs one call in its span and tags its response with the request id.
macro_rules! call {
    ($name:literal, $req:ident, $body:expr) => {{
        let id = request_id(&$req);
        let span = info_span!("request", id = %id, rpc = $name);
        let out = async { $body }.instrument(span).await?;
        Ok(with_id(&id, out))
    }};
}

#[tonic::async_trait]
impl Broker for Service {
    async fn publish(
        &self,
        req: Request<PublishRequest>,
    ) -> Result<Response<PublishReply>, Status> {
        call!("Publish", req, {
            let r = req.get_ref().clone();
            let c = self.caller(&req).await?;
            self.auth
                .need(c.may_publish(&r.topic), "publish", &r.topic)?;
            let values = r.values.into_iter().map(Bytes::from).collect();
            let p = self
                .backend
                .publish(r.topic, r.key.map(Bytes::from), r.partition, values, None)
                .await?;
            Ok::<_, Status>(PublishReply {
                partition: p.partition,
                first_offset: p.first_offset,
                count: p.count,
            })
        })
    }

    async fn fetch(&self, req: Request<FetchRequest>) -> Result<Response<FetchReply>, Status> {
        call!("Fetch", req, {
            let r = req.get_ref().clone();
            let c = self.caller(&req).await?;
            self.auth
                .need(c.may_subscribe(&r.topic), "fetch", &r.topic)?;
            // 0: the cap.
            let max_bytes =
                (r.max_bytes > 0).then(|| usize::try_from(r.max_bytes).unwrap_or(usize::MAX));
            let page = self
                .backend
                .fetch(r.topic.clone(), r.partition, r.from, r.max, max_bytes)
                .await?;
            let records = page
                .records
                .into_iter()
                .map(|record| {
                    to_record(Delivered {
                        topic: r.topic.clone(),
                        partition: r.partition,
                        record,
                    })
                })
                .collect();
            Ok::<_, Status>(FetchReply {
                records,
                next: page.next,
                capped_to: page.capped_to.map_or(0, |c| c as u64),
            })
        })
    }

    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<Record, Status>> + Send + 'static>>;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        call!("Subscribe", req, {
            let r = req.get_ref().clone();
            let c = self.caller(&req).await?;
            self.auth
                .need(c.may_subscribe(&r.topic), "subscribe", &r.topic)?;
            let after = Cursor::parse(&r.after)?;
            let rx = self
                .backend
                .subscribe(r.topic, r.partition, r.from, r.group, after)
                .await?;
            let s = rx.map(|d| Ok(to_record(d)));
            Ok::<_, Status>(Box::pin(s) as Self::SubscribeStream)
        })
    }

    async fn list_topics(
        &self,
        req: Request<ListTopicsRequest>,
    ) -> Result<Response<ListTopicsReply>, Status> {
        call!("ListTopics", req, {
            let c = self.caller(&req).await?;
            let mut topics = self.backend.list_topics().await?;
            topics.retain(|t| c.may_subscribe(&t.name));
            Ok::<_, Status>(ListTopicsReply {
                topics: topics
                    .into_iter()
                    .map(|t| TopicInfo {
                        name: t.name,
                        routing: t.routing.name().to_string(),
                        fsync: t.fsync.to_string(),
                        fsync_interval_ms: t.fsync_interval_ms,
                        retention_ms: t.retention_ms,
                        retention_bytes: t.retention_bytes,
                        partitions: t
                            .partitions
                            .iter()
                            .enumerate()
                            .map(|(i, p)| PartitionInfo {
                                partition: i as u32,
                                start_offset: p.start_offset,
                                next_offset: p.next_offset,
                                size_bytes: p.size_bytes,
                                segments: p.segments as u64,
                            })
                            .collect(),
                    })
                    .collect(),
            })
        })
    }

    async fn create_topic(
        &self,
        req: Request<CreateTopicRequest>,
    ) -> Result<Response<CreateTopicReply>, Status> {
        call!("CreateTopic", req, {
            let r = req.get_ref().clone();
            let c = self.caller(&req).await?;
            self.auth.need(c.is_admin(), "create", &r.name)?;
            self.backend
                .create_topic(NewTopic {
                    name: r.name,
                    partitions: r.partitions,
                    routing: r.routing,
                    fsync: r.fsync,
                    fsync_interval_ms: r.fsync_interval_ms,
                    retention_ms: r.retention_ms,
                    retention_bytes: r.retention_bytes,
                })
                .await?;
            Ok::<_, Status>(CreateTopicReply {})
        })
    }

    async fn delete_topic(
        &self,
        req: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicReply>, Status> {
        call!("DeleteTopic", req, {
            let r = req.get_ref().clone();
            let c = self.caller(&req).await?;
            self.auth.need(c.is_admin(), "delete", &r.name)?;
            self.backend.delete_topic(r.name).await?;
            Ok::<_, Status>(DeleteTopicReply {})
        })
    }

    async fn call_driver(
        &self,
        req: Request<CallDriverRequest>,
    ) -> Result<Response<CallDriverReply>, Status> {
        call!("CallDriver", req, {
            let r = req.get_ref().clone();
            let c = self.caller(&req).await?;
            let feature = format!("driver:{}", r.driver);
            self.auth.need(c.may_call(&feature), "call", &feature)?;
            let out = self
                .backend
                .call_driver(
                    r.driver,
                    r.method,
                    Bytes::from(r.params),
                    r.timeout_ms.map(Duration::from_millis),
                )
                .await?;
            Ok::<_, Status>(CallDriverReply {
                result: out.to_vec(),
            })
        })
    }

    async fn list_drivers(
        &self,
        req: Request<ListDriversRequest>,
    ) -> Result<Response<ListDriversReply>, Status> {
        call!("ListDrivers", req, {
            let c = self.caller(&req).await?;
            self.auth.need(c.is_admin(), "drivers", "ListDrivers")?;
            let drivers = self.backend.list_drivers().await?;
            Ok::<_, Status>(ListDriversReply {
                drivers: drivers
                    .into_iter()
                    .map(|d| DriverInfo {
                        name: d.name,
                        state: d.state.as_str().to_string(),
                        pid: d.pid,
                        starts: d.starts,
                        restarts: d.restarts,
                        last_error: d.last_error,
                        remote: d.remote,
                        peer: d.peer,
                    })
                    .collect(),
            })
        })
    }

    async fn list_services(
        &self,
        req: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesReply>, Status> {
        call!("ListServices", req, {
            let c = self.caller(&req).await?;
            self.auth.need(c.is_admin(), "services", "ListServices")?;
            let services = self.backend.list_services().await?;
            Ok::<_, Status>(ListServicesReply {
                services: services.into_iter().map(service_info).collect(),
            })
        })
    }

    async fn tree(&self, req: Request<TreeRequest>) -> Result<Response<TreeReply>, Status> {
        call!("Tree", req, {
            let c = self.caller(&req).await?;
            self.auth.need(c.is_admin(), "tree", "Tree")?;
            let json = serde_json::to_string(&self.backend.tree())
                .map_err(|e| Status::internal(e.to_string()))?;
            Ok::<_, Status>(TreeReply { json })
        })
    }
}

/// Serves `switchyard.v1.Broker` and health on `listener` until `shutdown` resolves.
pub async fn serve(
    backend: Backend,
    auth: GatewayAuth,
    listener: tokio::net::TcpListener,
    health_service: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> Result<(), tonic::transport::Error> {
    let stats = backend.stats.clone();
    // Pings find a peer that vanished without closing (its streams then end and leave
    // their groups); a cancelled stream or a closed connection ends them at once.
    let ping = backend.stream_keepalive;
    let svc = BrokerServer::new(Service { backend, auth });
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(ping))
        .add_service(health_service)
        .add_service(svc);
    match tls {
        Some(config) => {
            let incoming = crate::tls::incoming::accept(listener, config, stats);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    shutdown,
                )
                .await
        }
    }
}

fn service_info(s: crate::drivers::ServiceView) -> ServiceInfo {
    ServiceInfo {
        name: s.name,
        group: s.group,
        calls: s.calls,
        errors: s.errors,
        retries: s.retries,
        in_flight: s.in_flight,
        p50_us: s.latency_us.p50,
        p99_us: s.latency_us.p99,
        p999_us: s.latency_us.p999,
        instances: s
            .instances
            .into_iter()
            .map(|i| ServiceInstance {
                id: i.id,
                feature: i.feature,
                peer: i.peer,
                in_flight: i.in_flight,
                max_inflight: i.max_inflight,
                calls: i.calls,
            })
            .collect(),
    }
}
