//! [`TopicRegistry`]: the topics, their partitions, where a publish goes, and the
//! consumer groups.
//!
//! - [`batch`]: the publishes of one socket read, routed together, and looked up in
//!   the `msg_id` index.
//! - `dedup`: the index's counters, expiry, and its ids read back at start.
//! - [`groups`]: consumer groups, rebalancing and committed offsets.
//! - `commits`: committed offsets stored in group commits, off the registry's thread.
//! - `handoff`: a partition moving between live members, read once.
//! - `delete`: a topic deleted: partitions retired, groups ended, folder removed.
//! - `fetch`: reads of a partition, held to `topics.max_fetch_bytes`.
//! - `limits`: partitions per topic and in all.
//! - `lookup`: the topic listing and a partition's actor for reads.
//! - `meta`: a topic's options in its `topic.json`, and create conflicts.
//! - `spec`: a topic's options ([`TopicSpec`], [`Routing`]) and the registry's settings.

pub mod batch;
mod commits;
mod dedup;
mod delete;
mod fetch;
pub mod groups;
mod handoff;
mod limits;
mod lookup;
mod meta;
mod spec;

pub use commits::store_group_offsets;
pub use dedup::GetDedupStats;
pub use delete::{DeleteTopic, TRASH};
pub use fetch::{FetchEvery, FetchRecords, Fetched, FETCH_CEILING_BYTES};
pub use lookup::{ListTopics, PartitionOf, TopicInfo};
pub use meta::{load_spec, store_spec};
pub use spec::{key_partition, Routing, TopicSettings, TopicSpec};

use std::collections::BTreeMap;

use actix::prelude::*;
use bytes::Bytes;
use tracing::{error, info, warn};

use super::partition::{ApplyRetention, FsyncPolicy, Partition};
use super::subscribers::{Deliveries, StartAt, SubKey, Subscribe};
use super::TopicError;
use crate::ratelog::RateLog;
use crate::storage::log::Append;
use crate::storage::PartitionLog;
use crate::supervisor::{ChildContext, ChildGuard, ChildSpec, Shutdown};
use crate::topic::dedup::{self as ids, DedupIndex};
use crate::tree::TreeEntry;

/// Publishes a batch to a topic; answered once it is as durable as the topic's fsync
/// policy asks.
#[derive(Debug, Message)]
#[rtype(result = "Result<Published, TopicError>")]
pub struct Publish {
    pub topic: String,
    pub key: Option<Bytes>,
    pub partition: Option<u32>,
    pub records: Vec<Append>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub partition: u32,
    pub first_offset: u64,
    pub count: u64,
    /// A duplicate `msg_id`: the first publish's answer, nothing stored this time.
    pub duplicate: bool,
}

/// Creates a topic (an existing one with the same partition count is fine). The
/// options of a topic the config does not name are kept in its `topic.json`.
#[derive(Debug, Default, Message)]
#[rtype(result = "Result<(), TopicError>")]
pub struct CreateTopic {
    pub name: String,
    pub partitions: Option<u32>,
    pub routing: Option<Routing>,
    pub fsync: Option<FsyncPolicy>,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
}

/// Subscribes to one partition of a topic, or all of them; answered with the
/// partitions and the offsets the subscription starts at.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(u32, u64, Addr<Partition>)>, TopicError>")]
pub struct SubscribeTopic {
    pub topic: String,
    pub partition: Option<u32>,
    pub key: SubKey,
    pub to: Recipient<Deliveries>,
    pub start: StartAt,
    pub credit: u64,
    /// The receiver's byte window (see [`Subscribe::window`]).
    pub window: Option<std::sync::Arc<crate::budget::Window>>,
}

#[derive(Debug)]
struct Topic {
    spec: TopicSpec,
    partitions: Vec<Addr<Partition>>,
    next: u64,
}

impl Topic {
    /// The actor of partition `p`, or why there is none.
    fn partition(&self, p: u32) -> Result<Addr<Partition>, TopicError> {
        self.partitions
            .get(p as usize)
            .cloned()
            .ok_or_else(|| TopicError::NoPartition {
                topic: self.spec.name.clone(),
                partition: p,
                partitions: self.partitions.len(),
            })
    }
}

#[derive(Debug)]
pub struct TopicRegistry {
    settings: TopicSettings,
    topics: BTreeMap<String, Topic>,
    groups: std::collections::HashMap<(String, String), groups::Group>,
    committed: groups::Committed,
    /// Topics being deleted: not to be created again until that has finished.
    deleting: std::collections::HashSet<String>,
    commit_stores: commits::CommitStores,
    /// The recent `msg_id`s of every topic.
    dedup: DedupIndex,
    /// Ids evicted early (the index was full) and not yet in a warning.
    evicted_unlogged: u64,
    eviction_log: RateLog,
    /// The index's counters as the tree shows them.
    dedup_shown: ids::DedupStats,
    entry: TreeEntry,
    guard: ChildGuard,
}

/// A topic name: 1 to 128 of `A-Z a-z 0-9 . _ -`, not starting with `.` (it names a
/// folder: not `.` or `..`, and never one that `ls`, globs and backups pass over).
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Where connections find the registry that runs now (it changes when it restarts).
pub type TopicsSlot = std::sync::Arc<std::sync::Mutex<Option<Addr<TopicRegistry>>>>;

impl TopicRegistry {
    /// A supervisor child spec; each start opens the topics on disk and publishes the
    /// registry's address in `slot`.
    pub fn spec(settings: TopicSettings, slot: TopicsSlot) -> ChildSpec {
        ChildSpec::new("topics", "registry", move |cx: ChildContext| {
            let entry = cx.tree.register(Some(cx.parent), "topics", "registry");
            let mut reg = TopicRegistry {
                settings: settings.clone(),
                topics: BTreeMap::new(),
                groups: Default::default(),
                committed: Default::default(),
                deleting: Default::default(),
                commit_stores: Default::default(),
                dedup: DedupIndex::new(settings.dedup),
                evicted_unlogged: 0,
                eviction_log: RateLog::per_second(),
                dedup_shown: Default::default(),
                entry,
                guard: cx.guard,
            };
            reg.open_existing()?;
            for spec in settings.topics.clone() {
                // Over a partition limit (topics on disk count): that topic is left
                // out, not the registry, so every other topic is served.
                if let Err(e) = reg.check_limits(&spec) {
                    error!(topic = %spec.name, error = %e, "configured topic not created");
                    continue;
                }
                reg.create_at_start(spec).map_err(|e| e.to_string())?;
            }
            let addr = reg.start();
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr.clone());
            Ok(addr.recipient())
        })
    }

    /// The spec a topic gets: the config's `[[topic]]`, else what `c` asks for, with
    /// the defaults for what it leaves out.
    fn topic_spec(&self, c: CreateTopic) -> TopicSpec {
        self.settings
            .topics
            .iter()
            .find(|t| t.name == c.name)
            .cloned()
            .unwrap_or(TopicSpec {
                partitions: c.partitions.unwrap_or(self.settings.default_partitions),
                routing: c.routing.unwrap_or_default(),
                fsync: c.fsync,
                retention_ms: c.retention_ms,
                retention_bytes: c.retention_bytes,
                name: c.name,
            })
    }

    /// Opens every topic already on disk, recovering each partition.
    fn open_existing(&mut self) -> Result<(), String> {
        delete::empty_trash(&self.settings.dir);
        let Ok(dirs) = std::fs::read_dir(&self.settings.dir) else {
            return Ok(());
        };
        for d in dirs.filter_map(|e| e.ok()) {
            let name = d.file_name().to_string_lossy().into_owned();
            let is_dir = d.path().is_dir();
            if !valid_name(&name) || !is_dir {
                // Names with a leading dot were once taken: say why such a topic is gone.
                // Files (the data dir's `.lock`) were never topics.
                if is_dir && name.starts_with('.') && valid_name(name.trim_start_matches('.')) {
                    warn!(folder = %name, "folder starting with `.` is not a topic, not served");
                }
                continue;
            }
            let on_disk = std::fs::read_dir(d.path())
                .map(|r| {
                    r.filter_map(|e| e.ok())
                        .filter(|e| e.path().is_dir())
                        .count()
                })
                .unwrap_or(0);
            let configured = self.settings.topics.iter().any(|t| t.name == name);
            let mut spec = match meta::load(&d.path(), &name) {
                Some(stored) if !configured => stored,
                _ => self.topic_spec(CreateTopic {
                    name,
                    ..Default::default()
                }),
            };
            spec.partitions = spec.partitions.max(on_disk as u32);
            // One topic that cannot be served must not keep the others from being.
            let topic = spec.name.clone();
            if let Err(e) = self.create_at_start(spec) {
                error!(topic = %topic, error = %e, "topic not served");
            }
        }
        Ok(())
    }

    /// [`TopicRegistry::create`] for a topic on disk or in the config: a partition
    /// whose log cannot be opened is served as failed instead of failing the topic.
    fn create_at_start(&mut self, spec: TopicSpec) -> Result<(), TopicError> {
        self.create_as(spec, true, true)
    }

    fn create(&mut self, spec: TopicSpec) -> Result<(), TopicError> {
        self.create_as(spec, false, true)
    }

    /// Opens the topic's partitions and serves it; its `topic.json` is stored here when
    /// `store`, else by the caller (a `topic create`, on the blocking pool).
    fn create_as(
        &mut self,
        spec: TopicSpec,
        at_start: bool,
        store: bool,
    ) -> Result<(), TopicError> {
        if self.deleting.contains(&spec.name) {
            return Err(TopicError::Deleting { topic: spec.name });
        }
        if let Some(t) = self.topics.get(&spec.name) {
            return if t.spec.partitions == spec.partitions {
                Ok(())
            } else {
                Err(TopicError::Conflict {
                    topic: spec.name,
                    what: "partitions",
                    has: t.spec.partitions.to_string(),
                    asked: spec.partitions.to_string(),
                })
            };
        }
        if !valid_name(&spec.name) {
            return Err(TopicError::InvalidName { name: spec.name });
        }
        if spec.partitions == 0 || spec.partitions > 4096 {
            return Err(TopicError::PartitionCount {
                count: spec.partitions,
            });
        }
        let mut opened = Vec::with_capacity(spec.partitions as usize);
        let policy = spec.fsync.unwrap_or(self.settings.fsync);
        let ids_since = self.ids_since();
        let (mut found, mut scanned) = (Vec::new(), 0);
        for p in 0..spec.partitions {
            let dir = self.settings.dir.join(&spec.name).join(p.to_string());
            match PartitionLog::open(&dir, self.settings.log) {
                Ok((log, rec)) => {
                    if rec.truncated_bytes > 0 {
                        warn!(topic = %spec.name, partition = p, truncated_bytes = rec.truncated_bytes, "partition recovered a torn tail");
                    }
                    if let Some(since) = ids_since {
                        scanned += ids::rebuild(&log, p, since, &mut found).records;
                    }
                    opened.push(Partition::new(&spec.name, p, log, policy));
                }
                Err(e) if at_start => {
                    error!(topic = %spec.name, partition = p, error = %e, "partition log cannot be opened; partition marked failed");
                    let cfg = self.settings.log;
                    opened.push(Partition::failed(
                        &spec.name,
                        p,
                        dir,
                        cfg,
                        policy,
                        e.client_text(),
                    ));
                }
                Err(e) => {
                    warn!(topic = %spec.name, partition = p, error = %e, "partition log cannot be opened; topic not created");
                    return Err(TopicError::Partition(format!(
                        "partition {p} of {}: {}",
                        spec.name,
                        e.client_text()
                    )));
                }
            }
        }
        self.restore_ids(&spec.name, found, scanned);
        let partitions: Vec<Addr<Partition>> = opened
            .into_iter()
            .enumerate()
            .map(|(p, part)| {
                let entry = self.entry.child("partition", format!("{}/{p}", spec.name));
                part.with_entry(entry).start()
            })
            .collect();
        let topic_dir = self.settings.dir.join(&spec.name);
        if store {
            meta::store_or_warn(&topic_dir, &spec);
        }
        let committed = groups::load_committed(&topic_dir);
        if !committed.is_empty() {
            self.committed.insert(spec.name.clone(), committed);
        }
        info!(topic = %spec.name, partitions = spec.partitions, routing = %spec.routing, "topic ready");
        self.topics.insert(
            spec.name.clone(),
            Topic {
                spec,
                partitions,
                next: 0,
            },
        );
        Ok(())
    }

    /// The topic named `name`, or why there is none.
    fn topic(&self, name: &str) -> Result<&Topic, TopicError> {
        self.topics
            .get(name)
            .ok_or_else(|| TopicError::UnknownTopic {
                topic: name.to_string(),
            })
    }

    /// The topic named `name`, created with the defaults when it does not exist and
    /// `topics.auto_create` is on (a publish, or a subscriber started before its
    /// producer), or why there is none.
    fn topic_or_create(&mut self, name: &str) -> Result<&Topic, TopicError> {
        if !self.topics.contains_key(name) {
            if !self.settings.auto_create {
                return Err(TopicError::AutoCreateOff {
                    topic: name.to_string(),
                });
            }
            let spec = self.topic_spec(CreateTopic {
                name: name.to_string(),
                ..Default::default()
            });
            self.check_limits(&spec)?;
            self.create(spec)?;
        }
        self.topic(name)
    }

    /// The partition `p` goes to, and its topic. One hash lookup when the topic exists:
    /// this runs once per publish.
    fn route(&mut self, p: &Publish) -> Result<(u32, &Topic), TopicError> {
        if !self.topics.contains_key(&p.topic) {
            self.topic_or_create(&p.topic)?;
        }
        let t = self
            .topics
            .get_mut(&p.topic)
            .ok_or_else(|| TopicError::UnknownTopic {
                topic: p.topic.clone(),
            })?;
        let n = t.partitions.len() as u64;
        let i = match (p.partition, t.spec.routing, &p.key) {
            (Some(i), _, _) if u64::from(i) < n => u64::from(i),
            (Some(i), _, _) => {
                return Err(TopicError::NoPartition {
                    topic: p.topic.clone(),
                    partition: i,
                    partitions: n as usize,
                })
            }
            (None, Routing::Explicit, _) => {
                return Err(TopicError::PartitionRequired {
                    topic: p.topic.clone(),
                })
            }
            (None, Routing::KeyHash, Some(k)) => u64::from(key_partition(k, n as u32)),
            (None, _, _) => {
                t.next = t.next.wrapping_add(1);
                (t.next - 1) % n
            }
        };
        Ok((i as u32, t))
    }
}

impl Actor for TopicRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        if self.dedup.settings().enabled() {
            ctx.run_interval(std::time::Duration::from_secs(1), |act, _| act.dedup_tick());
        }
        ctx.run_interval(self.settings.retention_check, |act, _| {
            for t in act.topics.values() {
                let ms = t.spec.retention_ms.or(act.settings.retention_ms);
                let bytes = t.spec.retention_bytes.or(act.settings.retention_bytes);
                if ms.is_some() || bytes.is_some() {
                    for p in &t.partitions {
                        if p.try_send(ApplyRetention { retention_ms: ms, retention_bytes: bytes }).is_err() {
                            warn!(topic = %t.spec.name, "partition busy, retention skipped this round");
                        }
                    }
                }
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.guard.stopped();
    }
}

impl Handler<SubscribeTopic> for TopicRegistry {
    type Result = ResponseFuture<Result<Vec<(u32, u64, Addr<Partition>)>, TopicError>>;

    fn handle(&mut self, s: SubscribeTopic, _: &mut Self::Context) -> Self::Result {
        let targets = self
            .topic_or_create(&s.topic)
            .and_then(|t| match s.partition {
                Some(p) => t.partition(p).map(|a| vec![(p, a)]),
                None => Ok(t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (i as u32, a.clone()))
                    .collect()),
            });
        Box::pin(async move {
            let mut out = Vec::new();
            for (p, addr) in targets? {
                let sub = Subscribe {
                    key: s.key.clone(),
                    to: s.to.clone(),
                    start: s.start,
                    credit: s.credit,
                    window: s.window.clone(),
                };
                let start = addr.send(sub).await?.map_err(TopicError::Partition)?;
                out.push((p, start, addr));
            }
            Ok(out)
        })
    }
}

impl Handler<Shutdown> for TopicRegistry {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
