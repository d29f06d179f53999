//! Consumer groups: the members of a group share a topic's partitions, each partition
//! read by one member; a join or a leave moves partitions, and a partition that moves
//! starts at the group's committed offset, so nothing is skipped (at least once).
//! Committed offsets are kept in `<dir>/<topic>/groups.json`, replaced atomically.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use actix::prelude::*;
use tracing::{info, warn};

use super::TopicRegistry;
use crate::budget::Window;
use crate::topic::partition::Partition;
use crate::topic::subscribers::{Deliveries, StartAt, SubKey, Subscribe, Unsubscribe};
use crate::topic::TopicError;

/// The partitions a group member reads now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Assignment {
    pub sub: String,
    pub topic: String,
    pub partitions: Vec<(u32, Addr<Partition>)>,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<(), TopicError>")]
pub struct JoinGroup {
    pub group: String,
    pub topic: String,
    pub key: SubKey,
    pub to: Recipient<Deliveries>,
    pub notify: Recipient<Assignment>,
    /// Where a partition without a committed offset starts for this member.
    pub start: StartAt,
    /// The member's byte window (see [`Subscribe::window`]).
    pub window: Option<Arc<Window>>,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LeaveGroup {
    pub key: SubKey,
}

/// Records that `group` has processed `topic`/`partition` below `offset`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), TopicError>")]
pub struct Commit {
    pub group: String,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

#[derive(Debug)]
struct Member {
    key: SubKey,
    to: Recipient<Deliveries>,
    notify: Recipient<Assignment>,
    start: StartAt,
    window: Option<Arc<Window>>,
}

#[derive(Debug, Default)]
pub(super) struct Group {
    members: Vec<Member>,
    /// Member index owning each partition.
    owner: Vec<Option<usize>>,
}

/// Committed offsets: topic, then group, then partition.
pub(super) type Committed = BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>>;

pub(super) fn load_committed(topic_dir: &Path) -> BTreeMap<String, BTreeMap<u32, u64>> {
    std::fs::read(topic_dir.join("groups.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn store_committed(
    topic_dir: &Path,
    groups: &BTreeMap<String, BTreeMap<u32, u64>>,
) -> std::io::Result<()> {
    let json = serde_json::to_vec(groups).map_err(std::io::Error::other)?;
    super::meta::write_atomic(topic_dir, "groups.json", &json)
}

impl TopicRegistry {
    /// Gives each partition to member `i % members`, moving only what changes.
    fn rebalance(&mut self, gkey: &(String, String)) {
        let Some(t) = self.topics.get(&gkey.1) else {
            return;
        };
        let parts = t.partitions.clone();
        let committed = self
            .committed
            .get(&gkey.1)
            .and_then(|g| g.get(&gkey.0))
            .cloned()
            .unwrap_or_default();
        let Some(g) = self.groups.get_mut(gkey) else {
            return;
        };
        g.owner.resize(parts.len(), None);
        let n = g.members.len();
        for (p, addr) in parts.iter().enumerate() {
            let new = (n > 0).then(|| p % n);
            if g.owner[p] == new {
                continue;
            }
            if let Some(old) = g.owner[p].and_then(|o| g.members.get(o)) {
                let _ = addr.try_send(Unsubscribe {
                    key: old.key.clone(),
                });
            }
            if let Some(m) = new.and_then(|i| g.members.get(i)) {
                let start = committed
                    .get(&(p as u32))
                    .map_or(m.start, |o| StartAt::Offset(*o));
                let sub = Subscribe {
                    key: m.key.clone(),
                    to: m.to.clone(),
                    start,
                    credit: 0,
                    window: m.window.clone(),
                };
                if addr.try_send(sub).is_err() {
                    warn!(group = %gkey.0, topic = %gkey.1, partition = p, "partition busy; assignment not delivered");
                }
            }
            g.owner[p] = new;
        }
        for (i, m) in g.members.iter().enumerate() {
            let mine: Vec<(u32, Addr<Partition>)> = g
                .owner
                .iter()
                .enumerate()
                .filter(|(_, o)| **o == Some(i))
                .map(|(p, _)| (p as u32, parts[p].clone()))
                .collect();
            let _ = m.notify.try_send(Assignment {
                sub: m.key.sub.clone(),
                topic: gkey.1.clone(),
                partitions: mine,
            });
        }
        info!(group = %gkey.0, topic = %gkey.1, members = n, partitions = parts.len(), "group rebalanced");
    }
}

impl TopicRegistry {
    /// Forgets `topic`'s groups (it is being deleted) and tells each member its
    /// subscription has ended, owner of a partition or not.
    pub(super) fn end_groups_of(&mut self, topic: &str) {
        self.committed.remove(topic);
        let gone: Vec<_> = self
            .groups
            .keys()
            .filter(|k| k.1 == topic)
            .cloned()
            .collect();
        for gkey in gone {
            let Some(g) = self.groups.remove(&gkey) else {
                continue;
            };
            for m in g.members {
                m.to.do_send(Deliveries {
                    sub: m.key.sub,
                    topic: topic.to_string(),
                    partition: 0,
                    records: Vec::new(),
                    unreadable: None,
                    charged: 0,
                    deleted: true,
                });
            }
            info!(group = %gkey.0, topic = %gkey.1, "group ended: topic deleted");
        }
    }
}

impl Handler<JoinGroup> for TopicRegistry {
    type Result = Result<(), TopicError>;

    fn handle(&mut self, j: JoinGroup, _: &mut Self::Context) -> Self::Result {
        self.topic_or_create(&j.topic)?;
        let gkey = (j.group.clone(), j.topic.clone());
        let g = self.groups.entry(gkey.clone()).or_default();
        g.members.push(Member {
            key: j.key,
            to: j.to,
            notify: j.notify,
            start: j.start,
            window: j.window,
        });
        // Everything moves on a join: clear owners so the new split is applied.
        self.rebalance(&gkey);
        Ok(())
    }
}

impl Handler<LeaveGroup> for TopicRegistry {
    type Result = ();

    fn handle(&mut self, l: LeaveGroup, _: &mut Self::Context) {
        let keys: Vec<(String, String)> = self.groups.keys().cloned().collect();
        for gkey in keys {
            let Some(g) = self.groups.get_mut(&gkey) else {
                continue;
            };
            let Some(i) = g.members.iter().position(|m| m.key == l.key) else {
                continue;
            };
            g.members.remove(i);
            // Partitions of the leaver are free; later members shift down by one.
            for o in g.owner.iter_mut() {
                *o = match *o {
                    Some(x) if x == i => None,
                    Some(x) if x > i => Some(x - 1),
                    other => other,
                };
            }
            if g.members.is_empty() {
                self.groups.remove(&gkey);
                info!(group = %gkey.0, topic = %gkey.1, "group empty");
            } else {
                self.rebalance(&gkey);
            }
        }
    }
}

impl Handler<Commit> for TopicRegistry {
    type Result = Result<(), TopicError>;

    fn handle(&mut self, c: Commit, _: &mut Self::Context) -> Self::Result {
        self.topic(&c.topic)?.partition(c.partition)?;
        let groups = self.committed.entry(c.topic.clone()).or_default();
        groups
            .entry(c.group.clone())
            .or_default()
            .insert(c.partition, c.offset);
        store_committed(&self.settings.dir.join(&c.topic), groups)
            .map_err(|e| TopicError::Partition(format!("cannot store the commit: {e}")))
    }
}

/// The committed offsets of `group` on `topic`, for `switchyard topics` and lag.
pub(super) fn committed_of(c: &Committed, topic: &str) -> HashMap<String, BTreeMap<u32, u64>> {
    c.get(topic)
        .map(|g| g.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}
