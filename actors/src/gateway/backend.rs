//! [`Backend`]: the broker's operations as the gateway's two front ends use them. Each is
//! one or two actor messages (no loopback connection), bounded by `request_timeout_ms`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use switchyard_codecs::record::Record;
use switchyard_codecs::Labels;

use super::cursor::Cursor;
use super::error::{ApiError, ErrorKind};
use super::stream::{Progress, StreamRx, StreamSink};
use crate::budget::Window;
use crate::drivers::{CallFeature, DriverHost, DriverStatus, DriversSlot, ListDrivers};
use crate::stats::BrokerStats;
use crate::storage::log::Append;
use crate::topic::registry::{
    CreateTopic, DeleteTopic, FetchEvery, FetchRecords, Fetched, ListTopics, Publish, Published,
    TopicInfo, TopicsSlot,
};
use crate::topic::{wire, TopicRegistry};
use crate::tree::{ActorTree, TreeNode};

/// A topic to create, as HTTP and gRPC clients name its options (the `topic create`
/// labels); what is left out takes the defaults.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<u32>,
    pub routing: Option<String>,
    pub fsync: Option<String>,
    pub fsync_interval_ms: Option<u64>,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
}

/// Most records one fetch returns.
pub const FETCH_MAX: u32 = 10_000;

/// What a fetch returns.
#[derive(Debug)]
pub struct FetchPage {
    pub records: Vec<Record>,
    /// The offset to fetch from next.
    pub next: u64,
    /// The fetch asked for more bytes than `topics.max_fetch_bytes`: held to this.
    pub capped_to: Option<usize>,
}

/// Records one subscription stream may hold that its client has not read yet (its
/// bytes are bounded by `gateway.stream_buffer_bytes` as well).
pub const STREAM_WINDOW: u64 = 256;

/// `gateway.stream_buffer_bytes` unless told otherwise.
pub const STREAM_BUFFER_BYTES: u64 = 4 << 20;

/// `gateway.stream_keepalive_ms` unless told otherwise.
pub const STREAM_KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Backend {
    pub topics: TopicsSlot,
    pub drivers: DriversSlot,
    pub tree: ActorTree,
    pub stats: Arc<BrokerStats>,
    /// Serving: false until the broker has started, and again once it drains.
    pub ready: Arc<AtomicBool>,
    pub timeout: Duration,
    /// Subscription streams get ids far from connection ids.
    next_stream: Arc<AtomicU64>,
    /// Set at shutdown: every stream ends.
    pub draining: Arc<AtomicBool>,
    /// The broker's arbiter: stream actors live there, whichever thread (an actix-web
    /// worker, a tonic task) opened them.
    arbiter: actix::dev::ArbiterHandle,
    /// Bytes of records one stream may hold that its client has not read.
    pub stream_buffer_bytes: u64,
    /// How long an SSE stream may go without writing before it writes a keep-alive
    /// comment; also the gRPC server's HTTP/2 ping interval.
    pub stream_keepalive: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Backend {
    /// Must be called on the broker's arbiter (inside its actix System).
    pub fn new(
        topics: TopicsSlot,
        drivers: DriversSlot,
        tree: ActorTree,
        stats: Arc<BrokerStats>,
        timeout: Duration,
    ) -> Self {
        Backend {
            topics,
            drivers,
            tree,
            stats,
            ready: Arc::new(AtomicBool::new(false)),
            timeout,
            next_stream: Arc::new(AtomicU64::new(1 << 62)),
            draining: Arc::new(AtomicBool::new(false)),
            arbiter: actix::Arbiter::current(),
            stream_buffer_bytes: STREAM_BUFFER_BYTES,
            stream_keepalive: STREAM_KEEPALIVE,
        }
    }

    pub fn with_stream_buffer(mut self, bytes: u64) -> Self {
        self.stream_buffer_bytes = bytes;
        self
    }

    pub fn with_stream_keepalive(mut self, every: Duration) -> Self {
        self.stream_keepalive = every;
        self
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst)
    }

    fn registry(&self) -> Result<Addr<TopicRegistry>, ApiError> {
        self.topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| ApiError::new(ErrorKind::Unavailable, "topics are not running"))
    }

    fn host(&self) -> Result<Addr<DriverHost>, ApiError> {
        self.drivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| ApiError::new(ErrorKind::Unavailable, "drivers are not running"))
    }

    /// Runs `f` within the request timeout.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::new(
                    ErrorKind::DeadlineExceeded,
                    format!("no answer within {} ms", self.timeout.as_millis()),
                ))
            })
    }

    pub async fn publish(
        &self,
        topic: String,
        key: Option<Bytes>,
        partition: Option<u32>,
        values: Vec<Bytes>,
        msg_id: Option<Bytes>,
    ) -> Result<Published, ApiError> {
        if values.is_empty() {
            return Err(ApiError::invalid("nothing to publish: no values"));
        }
        let reg = self.registry()?;
        let ts = now_ms();
        // The id is stored with every record, as a broker-port publish stores its labels.
        let mut labels = Labels::new();
        if let Some(id) = msg_id {
            crate::topic::dedup::check_msg_id(&id)?;
            labels.insert(crate::topic::dedup::MSG_ID, id);
        }
        let records = values
            .into_iter()
            .map(|value| Append {
                timestamp_ms: ts,
                key: key.clone(),
                labels: labels.clone(),
                value,
            })
            .collect();
        self.bounded(async move {
            reg.send(Publish {
                topic,
                key,
                partition,
                records,
            })
            .await?
            .map_err(ApiError::from)
        })
        .await
    }

    /// Up to `max` records (0: 100) and about `max_bytes` (`None`: the cap), never more
    /// than `topics.max_fetch_bytes`.
    pub async fn fetch(
        &self,
        topic: String,
        partition: u32,
        from: u64,
        max: u32,
        max_bytes: Option<usize>,
    ) -> Result<FetchPage, ApiError> {
        let reg = self.registry()?;
        let max = if max == 0 { 100 } else { max.min(FETCH_MAX) } as usize;
        self.bounded(async move {
            let mut fetched = reg
                .send(FetchRecords {
                    topic,
                    partition,
                    from,
                    max_bytes,
                    max_records: Some(max),
                })
                .await??;
            fetched.records.truncate(max);
            let next = fetched.records.last().map_or(from, |r| r.offset + 1);
            Ok(FetchPage {
                records: fetched.records,
                next,
                capped_to: fetched.capped_to,
            })
        })
        .await
    }

    /// Every partition of `topic`, each from its offset in `from` (else
    /// `default_from`), `max` records in all (0: 100) shared between them.
    pub async fn fetch_every(
        &self,
        topic: String,
        from: std::collections::BTreeMap<u32, u64>,
        default_from: u64,
        max: u32,
        max_bytes: Option<usize>,
    ) -> Result<Vec<(u32, Fetched)>, ApiError> {
        let reg = self.registry()?;
        let max = if max == 0 { 100 } else { max.min(FETCH_MAX) } as usize;
        self.bounded(async move {
            Ok(reg
                .send(FetchEvery {
                    topic,
                    from,
                    default_from,
                    max_bytes,
                    max_records: max,
                })
                .await??)
        })
        .await
    }

    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, ApiError> {
        let reg = self.registry()?;
        self.bounded(async move { Ok(reg.send(ListTopics).await?) })
            .await
    }

    /// The `msg_id` index's counters (idempotent publish).
    pub async fn dedup_stats(&self) -> Result<crate::topic::dedup::DedupStats, ApiError> {
        let reg = self.registry()?;
        self.bounded(async move { Ok(reg.send(crate::topic::registry::GetDedupStats).await?) })
            .await
    }

    pub async fn create_topic(&self, t: NewTopic) -> Result<(), ApiError> {
        let create = CreateTopic {
            routing: t
                .routing
                .as_deref()
                .map(wire::parse_routing)
                .transpose()
                .map_err(ApiError::invalid)?,
            fsync: wire::parse_fsync(t.fsync.as_deref(), t.fsync_interval_ms)
                .map_err(ApiError::invalid)?,
            name: t.name,
            partitions: t.partitions,
            retention_ms: t.retention_ms,
            retention_bytes: t.retention_bytes,
        };
        let reg = self.registry()?;
        self.bounded(async move { Ok(reg.send(create).await??) })
            .await
    }

    /// Deletes a topic: its partitions, files, groups and committed offsets.
    pub async fn delete_topic(&self, name: String) -> Result<(), ApiError> {
        let reg = self.registry()?;
        self.bounded(async move { Ok(reg.send(DeleteTopic { topic: name }).await??) })
            .await
    }

    pub async fn call_driver(
        &self,
        driver: String,
        method: String,
        params: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Bytes, ApiError> {
        let host = self.host()?;
        let call = CallFeature {
            feature: format!("driver:{driver}"),
            method,
            payload: params,
            timeout: Some(timeout.unwrap_or(self.timeout)),
        };
        // The call's own deadline answers first; this one only guards the mailbox.
        let guard = timeout.unwrap_or(self.timeout) + Duration::from_secs(1);
        tokio::time::timeout(guard, host.send(call))
            .await
            .map_err(|_| ApiError::new(ErrorKind::DeadlineExceeded, "timeout"))??
            .map_err(ApiError::from_actor)
    }

    pub async fn list_drivers(&self) -> Result<Vec<DriverStatus>, ApiError> {
        let host = self.host()?;
        self.bounded(async move { Ok(host.send(ListDrivers).await?) })
            .await
    }

    /// Named services, their instances and counters.
    pub async fn list_services(&self) -> Result<Vec<crate::drivers::ServiceView>, ApiError> {
        let host = self.host()?;
        self.bounded(async move { Ok(host.send(crate::drivers::ListServices).await?) })
            .await
    }

    pub fn tree(&self) -> Vec<TreeNode> {
        self.tree.snapshot()
    }

    /// Opens a live subscription; records arrive on the receiver until the client drops
    /// it or the broker drains. Outside a group, the partitions `after` names resume
    /// after its offsets, the others start at `from`.
    pub async fn subscribe(
        &self,
        topic: String,
        partition: Option<u32>,
        from: String,
        group: Option<String>,
        after: Cursor,
    ) -> Result<StreamRx, ApiError> {
        let reg = self.registry()?;
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_WINDOW as usize);
        let window = Window::new(self.stats.memory.clone(), self.stream_buffer_bytes);
        let progress = Arc::new(Progress::default());
        let resume = if group.is_some() {
            Default::default()
        } else {
            after.resume()
        };
        let rx = StreamRx::new(rx, window.clone(), progress.clone());
        let sink = StreamSink::new(
            id,
            topic,
            partition,
            group,
            tx,
            self.stats.clone(),
            self.draining.clone(),
        )
        .with_client_side(window, progress);
        let start = sink.start_at(&from)?;
        let addr = StreamSink::start_in_arbiter(&self.arbiter, move |_| sink);
        self.bounded(async move {
            addr.send(super::stream::Open {
                registry: reg,
                start,
                resume,
            })
            .await?
            .map_err(ApiError::from)
        })
        .await?;
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn ready_only_between_start_and_drain() {
        let b = Backend::new(
            TopicsSlot::default(),
            DriversSlot::default(),
            ActorTree::new(),
            Arc::new(BrokerStats::default()),
            Duration::from_millis(50),
        );
        assert!(!b.is_ready(), "not ready before the broker has started");
        b.ready.store(true, Ordering::SeqCst);
        assert!(b.is_ready());
        b.draining.store(true, Ordering::SeqCst);
        assert!(!b.is_ready(), "not ready while draining");
        // Without the actors, operations answer at once with UNAVAILABLE.
        let e = b.list_topics().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(e.http_status(), 503);
    }
}
