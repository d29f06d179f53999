//! What the registry tells about its topics: [`ListTopics`] (options, partitions,
//! group offsets) and [`PartitionOf`] (a partition's actor, for reads).

use std::collections::BTreeMap;

use actix::prelude::*;
use serde::Serialize;

use super::{groups, Routing, TopicRegistry};
use crate::topic::partition::{GetPartitionStatus, Partition, PartitionStatus};
use crate::topic::TopicError;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub routing: Routing,
    /// The fsync policy in force (`always`, `interval`, `never`), with its period.
    pub fsync: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsync_interval_ms: Option<u64>,
    /// The retention in force: the topic's own, else the `[storage]` default.
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub partitions: Vec<PartitionStatus>,
    /// Committed offsets per consumer group and partition.
    pub groups: std::collections::HashMap<String, BTreeMap<u32, u64>>,
}

#[derive(Debug, Message)]
#[rtype(result = "Vec<TopicInfo>")]
pub struct ListTopics;

impl Handler<ListTopics> for TopicRegistry {
    type Result = ResponseFuture<Vec<TopicInfo>>;

    fn handle(&mut self, _: ListTopics, _: &mut Self::Context) -> Self::Result {
        let topics: Vec<_> = self
            .topics
            .values()
            .map(|t| {
                let fsync = t.spec.fsync.unwrap_or(self.settings.fsync);
                let info = TopicInfo {
                    name: t.spec.name.clone(),
                    routing: t.spec.routing,
                    fsync: fsync.name(),
                    fsync_interval_ms: fsync.interval_ms(),
                    retention_ms: t.spec.retention_ms.or(self.settings.retention_ms),
                    retention_bytes: t.spec.retention_bytes.or(self.settings.retention_bytes),
                    partitions: Vec::new(),
                    groups: groups::committed_of(&self.committed, &t.spec.name),
                };
                (info, t.partitions.clone())
            })
            .collect();
        Box::pin(async move {
            let mut out = Vec::with_capacity(topics.len());
            for (mut info, parts) in topics {
                for p in parts {
                    info.partitions
                        .push(p.send(GetPartitionStatus).await.unwrap_or_default());
                }
                out.push(info);
            }
            out
        })
    }
}

/// The actor of one partition, for reads.
#[derive(Debug, Message)]
#[rtype(result = "Result<Addr<Partition>, TopicError>")]
pub struct PartitionOf {
    pub topic: String,
    pub partition: u32,
}

impl Handler<PartitionOf> for TopicRegistry {
    type Result = Result<Addr<Partition>, TopicError>;

    fn handle(&mut self, m: PartitionOf, _: &mut Self::Context) -> Self::Result {
        self.topic(&m.topic)?.partition(m.partition)
    }
}
