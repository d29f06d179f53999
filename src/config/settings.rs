//! What each part of the broker is told: the actor-side settings built from a
//! validated [`Config`].

use std::time::Duration;

use switchyard_actors::maze::MazeSettings;
use switchyard_actors::storage::LogConfig;
use switchyard_actors::topic::{FsyncPolicy, TopicSettings, TopicSpec};
use switchyard_actors::{ConnectionSettings, ListenerSettings, RestartPolicy, SlowConsumer};
use switchyard_codecs::Limits;

use super::{Config, Fsync};

impl Config {
    pub fn limits(&self) -> Limits {
        let b = &self.broker;
        Limits {
            max_frame_bytes: b.max_frame_bytes.usize(),
            max_labels: b.max_labels.usize(),
            max_label_bytes: b.max_label_bytes.usize(),
            max_line_bytes: b.max_line_bytes.usize(),
            max_skip_bytes: b.max_skip_bytes,
        }
    }

    /// What the broker listener is told.
    pub fn broker_listener(&self) -> ListenerSettings {
        let b = &self.broker;
        ListenerSettings {
            name: "broker".into(),
            child_kind: "connection",
            max_connections: b.max_connections.usize(),
            max_connections_per_ip: b.max_connections_per_ip.usize(),
            // A plaintext envelope would be garbage to a TLS client.
            refusal_notice: !b.tls,
            allow: Vec::new(),
            connection: ConnectionSettings {
                limits: self.limits(),
                output_buffer_bytes: b.output_buffer_bytes.usize(),
                idle_timeout: (b.idle_timeout_ms > 0)
                    .then(|| Duration::from_millis(b.idle_timeout_ms)),
                first_frame_timeout: (b.first_frame_timeout_ms > 0)
                    .then(|| Duration::from_millis(b.first_frame_timeout_ms)),
                slow_consumer: b.slow_consumer,
                max_inflight: b.max_inflight.usize(),
                buffer_release: Duration::from_millis(b.buffer_release_ms.get()),
            },
        }
    }

    fn fsync_policy(&self, f: Fsync) -> FsyncPolicy {
        match f {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Interval => {
                FsyncPolicy::Interval(Duration::from_millis(self.storage.fsync_interval_ms.get()))
            }
            Fsync::Never => FsyncPolicy::Never,
        }
    }

    /// What the topic registry is told.
    pub fn topic_settings(&self) -> TopicSettings {
        let s = &self.storage;
        TopicSettings {
            dir: s.dir.clone(),
            fsync: self.fsync_policy(s.fsync),
            log: LogConfig {
                segment_bytes: s.segment_bytes.get(),
                max_record_bytes: self.broker.max_frame_bytes.usize() + 1024,
                index_interval_bytes: 4096,
            },
            retention_ms: (s.retention_ms > 0).then_some(s.retention_ms),
            retention_bytes: (s.retention_bytes > 0).then_some(s.retention_bytes),
            retention_check: Duration::from_millis(s.retention_check_ms.get()),
            default_partitions: self.topics.default_partitions.get() as u32,
            auto_create: self.topics.auto_create,
            max_fetch_bytes: self.topics.max_fetch_bytes.usize(),
            max_partitions_per_topic: self.topics.max_partitions_per_topic.get() as u32,
            max_partitions: self.topics.max_partitions.usize(),
            dedup: switchyard_actors::topic::dedup::DedupSettings {
                window_ms: self.topics.dedup_window_ms.get(),
                max_ids: self.topics.dedup_max_ids.usize(),
            },
            topics: self
                .topic
                .iter()
                .map(|t| TopicSpec {
                    name: t.name.clone(),
                    partitions: t.partitions.get() as u32,
                    routing: t.routing,
                    fsync: t.fsync.map(|f| self.fsync_policy(f)),
                    retention_ms: t.retention_ms,
                    retention_bytes: t.retention_bytes,
                })
                .collect(),
        }
    }

    /// The maze router's settings, when `[maze]` is present.
    pub fn maze_settings(&self) -> Option<MazeSettings> {
        let m = self.maze.as_ref()?;
        Some(MazeSettings {
            reorder_window: m.reorder_window.usize(),
            id_timeout: Duration::from_millis(m.id_timeout_ms.get()),
            on_new_source: m.on_new_source,
            gap_timeout: (m.gap_timeout_ms > 0).then(|| Duration::from_millis(m.gap_timeout_ms)),
            max_users: m.max_users.usize(),
            pace_output_bytes: m.pace_output_bytes.usize(),
            client_high_water_bytes: self.broker.output_buffer_bytes.usize() / 2,
            client_stall: Duration::from_millis(m.client_stall_ms.get()),
            journal_topic: m.topic.clone(),
        })
    }

    /// The maze event-port and client-port listeners.
    pub fn maze_listeners(&self) -> Option<(ListenerSettings, ListenerSettings)> {
        let m = self.maze.as_ref()?;
        let mut conn = self.broker_listener().connection;
        conn.idle_timeout = None;
        conn.slow_consumer = SlowConsumer::Disconnect;
        let events = ListenerSettings {
            name: "maze-events".into(),
            child_kind: "source",
            // One source streams; a few more are let in only to be refused with a reason.
            max_connections: 8,
            max_connections_per_ip: 8,
            refusal_notice: false,
            allow: m.allow.clone(),
            connection: conn.clone(),
        };
        let clients = ListenerSettings {
            name: "maze-clients".into(),
            child_kind: "session",
            max_connections: m.max_clients.usize(),
            max_connections_per_ip: m.max_clients_per_ip.usize(),
            refusal_notice: false,
            allow: m.allow.clone(),
            connection: conn,
        };
        Some((events, clients))
    }

    pub fn restart_policy(&self) -> RestartPolicy {
        let s = &self.supervisor;
        RestartPolicy {
            max_restarts: u32::try_from(s.max_restarts.get()).unwrap_or(u32::MAX),
            within: Duration::from_millis(s.within_ms.get()),
            backoff: Duration::from_millis(s.backoff_ms),
            backoff_max: Duration::from_millis(s.backoff_max_ms),
        }
    }
}
