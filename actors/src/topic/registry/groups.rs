//! Consumer groups: the members of a group share a topic's partitions, each partition
//! read by one member; a join or a leave moves partitions. A partition whose member
//! left starts at the group's committed offset, so nothing is skipped (at least once);
//! one that moves between live members is handed off (see `handoff`), so nothing is
//! read twice either.
//! Committed offsets are kept in `<dir>/<topic>/groups.json`, replaced atomically (see
//! `commits`).

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
pub(super) struct Member {
    pub(super) key: SubKey,
    to: Recipient<Deliveries>,
    notify: Recipient<Assignment>,
    start: StartAt,
    window: Option<Arc<Window>>,
}

#[derive(Debug, Default)]
pub(super) struct Group {
    pub(super) members: Vec<Member>,
    /// Member index owning each partition.
    pub(super) owner: Vec<Option<usize>>,
    /// Partitions moving between live members, not yet started for their new owner.
    pub(super) handoffs: HashMap<u32, super::handoff::Handoff>,
}

/// Committed offsets: topic, then group, then partition.
pub(super) type Committed = BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>>;

pub(super) fn load_committed(topic_dir: &Path) -> BTreeMap<String, BTreeMap<u32, u64>> {
    std::fs::read(topic_dir.join("groups.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

impl TopicRegistry {
    /// Gives each partition to member `i % members`, moving only what changes. A
    /// partition taken from a live member is handed off; one whose member is gone
    /// starts at the committed offset.
    fn rebalance(&mut self, gkey: &(String, String), ctx: &mut Context<Self>) {
        let Some(t) = self.topics.get(&gkey.1) else {
            return;
        };
        let parts = t.partitions.clone();
        let Some(g) = self.groups.get_mut(gkey) else {
            return;
        };
        g.owner.resize(parts.len(), None);
        let n = g.members.len();
        let mut revokes = Vec::new();
        let mut starts = Vec::new();
        for (p, addr) in parts.iter().enumerate() {
            let new = (n > 0).then(|| p % n);
            if g.owner[p] == new {
                continue;
            }
            let old = g.owner[p]
                .and_then(|o| g.members.get(o))
                .map(|m| m.key.clone());
            g.owner[p] = new;
            if g.handoffs.contains_key(&(p as u32)) {
                // Whoever owns it when the hand-off completes is started then.
                continue;
            }
            match (old, new) {
                (Some(from), Some(_)) => {
                    g.handoffs
                        .insert(p as u32, super::handoff::Handoff::new(from.clone()));
                    revokes.push((p as u32, addr.clone(), from));
                }
                (Some(from), None) => {
                    let _ = addr.try_send(Unsubscribe { key: from });
                }
                (None, Some(_)) => starts.push(p as u32),
                (None, None) => {}
            }
        }
        for p in starts {
            self.start_owner(gkey, p, None);
        }
        self.notify_members(gkey);
        self.start_handoffs(gkey, revokes, ctx);
        info!(group = %gkey.0, topic = %gkey.1, members = n, partitions = parts.len(), "group rebalanced");
    }

    /// Subscribes the member that owns partition `p` now, at `at` or else the group's
    /// committed offset (the member's own start when nothing is committed).
    pub(super) fn start_owner(&mut self, gkey: &(String, String), p: u32, at: Option<u64>) {
        let Some(addr) = self
            .topics
            .get(&gkey.1)
            .and_then(|t| t.partitions.get(p as usize).cloned())
        else {
            return;
        };
        let committed = self
            .committed
            .get(&gkey.1)
            .and_then(|g| g.get(&gkey.0))
            .and_then(|c| c.get(&p).copied());
        let Some(g) = self.groups.get(gkey) else {
            return;
        };
        let Some(m) = g
            .owner
            .get(p as usize)
            .copied()
            .flatten()
            .and_then(|i| g.members.get(i))
        else {
            return;
        };
        let start = match (at, committed) {
            (Some(a), Some(c)) => StartAt::Offset(a.max(c)),
            (Some(a), None) => StartAt::Offset(a),
            (None, Some(c)) => StartAt::Offset(c),
            (None, None) => m.start,
        };
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

    /// Tells each member the partitions it reads now (a partition being handed off
    /// counts for its new owner once the hand-off completes).
    pub(super) fn notify_members(&self, gkey: &(String, String)) {
        let n = self.groups.get(gkey).map_or(0, |g| g.members.len());
        for i in 0..n {
            self.notify_member(gkey, i);
        }
    }

    /// Tells member `i` the partitions it reads now.
    pub(super) fn notify_member(&self, gkey: &(String, String), i: usize) {
        let (Some(t), Some(g)) = (self.topics.get(&gkey.1), self.groups.get(gkey)) else {
            return;
        };
        let Some(m) = g.members.get(i) else {
            return;
        };
        let mine: Vec<(u32, Addr<Partition>)> = g
            .owner
            .iter()
            .enumerate()
            .filter(|(p, o)| **o == Some(i) && !g.handoffs.contains_key(&(*p as u32)))
            .filter_map(|(p, _)| Some((p as u32, t.partitions.get(p)?.clone())))
            .collect();
        let _ = m.notify.try_send(Assignment {
            sub: m.key.sub.clone(),
            topic: gkey.1.clone(),
            partitions: mine,
        });
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

    fn handle(&mut self, j: JoinGroup, ctx: &mut Self::Context) -> Self::Result {
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
        self.rebalance(&gkey, ctx);
        Ok(())
    }
}

impl Handler<LeaveGroup> for TopicRegistry {
    type Result = ();

    fn handle(&mut self, l: LeaveGroup, ctx: &mut Self::Context) {
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
                self.rebalance(&gkey, ctx);
                // What the leaver was handing off starts at the commit: it will not
                // commit more.
                self.abandon_handoffs(&gkey, &l.key);
            }
        }
    }
}

impl Handler<Commit> for TopicRegistry {
    type Result = ResponseFuture<Result<(), TopicError>>;

    fn handle(&mut self, c: Commit, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.topic(&c.topic).and_then(|t| t.partition(c.partition)) {
            return Box::pin(std::future::ready(Err(e)));
        }
        self.committed
            .entry(c.topic.clone())
            .or_default()
            .entry(c.group.clone())
            .or_default()
            .insert(c.partition, c.offset);
        let durable = self.commit_durable(&c.topic, ctx);
        self.committed_to(&(c.group, c.topic), c.partition);
        durable
    }
}

/// The committed offsets of `group` on `topic`, for `switchyard topics` and lag.
pub(super) fn committed_of(c: &Committed, topic: &str) -> HashMap<String, BTreeMap<u32, u64>> {
    c.get(topic)
        .map(|g| g.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}
