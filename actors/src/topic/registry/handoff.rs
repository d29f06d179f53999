//! A partition moving between two live members of a group (a member joined) is handed
//! off, so that nothing is read twice: the old member's subscription ends (the
//! partition says at which offset its deliveries ended), the old member gets an
//! `assigned` without the partition and commits what it was sent, and the new member
//! starts at that offset once it is committed. A member that does not commit it within
//! [`HANDOFF_WAIT`], or leaves, hands off at the committed offset instead: records it
//! was sent and did not commit are read again (at least once, never lost).

use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{debug, warn};

use super::TopicRegistry;
use crate::topic::partition::Partition;
use crate::topic::subscribers::{Revoke, SubKey};

/// How long a new owner waits for the old one to commit what it was sent.
pub const HANDOFF_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(super) struct Handoff {
    /// The member the partition is taken from.
    from: SubKey,
    /// Where its deliveries ended (known once the partition has answered).
    until: Option<u64>,
    since: Instant,
}

impl Handoff {
    pub(super) fn new(from: SubKey) -> Self {
        Handoff {
            from,
            until: None,
            since: Instant::now(),
        }
    }
}

type GroupKey = (String, String);

impl TopicRegistry {
    /// Ends the old owners' subscriptions to the partitions in `revokes`; each hand-off
    /// goes on when its partition answers, and ends after [`HANDOFF_WAIT`] at the latest.
    pub(super) fn start_handoffs(
        &mut self,
        gkey: &GroupKey,
        revokes: Vec<(u32, Addr<Partition>, SubKey)>,
        ctx: &mut Context<Self>,
    ) {
        for (p, addr, from) in revokes {
            let (g1, g2) = (gkey.clone(), gkey.clone());
            ctx.spawn(
                addr.send(Revoke { key: from.clone() })
                    .into_actor(self)
                    .map(move |r, act, _| act.revoked(&g1, p, &from, r.ok().flatten())),
            );
            ctx.run_later(HANDOFF_WAIT, move |act, _| act.handoff_overdue(&g2, p));
        }
    }

    /// The old owner's deliveries of `p`, which started at `sent.0`, ended before
    /// `sent.1` (`None`: it had no subscription, so nothing to wait for).
    fn revoked(&mut self, gkey: &GroupKey, p: u32, from: &SubKey, sent: Option<(u64, u64)>) {
        let Some(h) = self
            .groups
            .get_mut(gkey)
            .and_then(|g| g.handoffs.get_mut(&p))
            .filter(|h| &h.from == from)
        else {
            return;
        };
        match sent {
            // It was sent nothing: the new owner starts where it would have.
            Some((started, next)) if started == next => self.complete(gkey, p, Some(next)),
            Some((_, next)) => {
                h.until = Some(next);
                self.committed_to(gkey, p);
            }
            None => self.complete(gkey, p, None),
        }
    }

    /// The group committed `p`: a hand-off waiting for that commit goes on.
    pub(super) fn committed_to(&mut self, gkey: &GroupKey, p: u32) {
        let until = self
            .groups
            .get(gkey)
            .and_then(|g| g.handoffs.get(&p))
            .and_then(|h| h.until);
        let committed = self
            .committed
            .get(&gkey.1)
            .and_then(|g| g.get(&gkey.0))
            .and_then(|c| c.get(&p).copied());
        if let (Some(u), Some(c)) = (until, committed) {
            if c >= u {
                debug!(group = %gkey.0, topic = %gkey.1, partition = p, offset = u, "partition handed off");
                self.complete(gkey, p, Some(u));
            }
        }
    }

    /// Hand-offs from `from` (it left) start at the committed offset now.
    pub(super) fn abandon_handoffs(&mut self, gkey: &GroupKey, from: &SubKey) {
        let ps: Vec<u32> = self
            .groups
            .get(gkey)
            .map(|g| {
                g.handoffs
                    .iter()
                    .filter(|(_, h)| &h.from == from)
                    .map(|(p, _)| *p)
                    .collect()
            })
            .unwrap_or_default();
        for p in ps {
            self.complete(gkey, p, None);
        }
    }

    fn handoff_overdue(&mut self, gkey: &GroupKey, p: u32) {
        let Some(h) = self.groups.get(gkey).and_then(|g| g.handoffs.get(&p)) else {
            return;
        };
        if h.since.elapsed() < HANDOFF_WAIT {
            // A later hand-off of the same partition; its own timer ends it.
            return;
        }
        warn!(group = %gkey.0, topic = %gkey.1, partition = p, waited_ms = HANDOFF_WAIT.as_millis() as u64,
            "old member did not commit what it was sent; partition moves at the committed offset");
        self.complete(gkey, p, None);
    }

    /// Starts partition `p` for its owner now, at `at` (else the committed offset).
    fn complete(&mut self, gkey: &GroupKey, p: u32, at: Option<u64>) {
        let removed = self
            .groups
            .get_mut(gkey)
            .and_then(|g| g.handoffs.remove(&p));
        if removed.is_some() {
            self.start_owner(gkey, p, at);
            let owner = self
                .groups
                .get(gkey)
                .and_then(|g| g.owner.get(p as usize).copied().flatten());
            if let Some(i) = owner {
                self.notify_member(gkey, i);
            }
        }
    }
}
