//! Flow control: when the source must wait for the clients, when it may go on, who
//! is cut off for holding the stream back, and skipping a sequence gap.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::warn;

use super::MazeRouter;
use crate::maze::session::Evict;
use crate::stats::BrokerStats;

impl MazeRouter {
    /// Cuts a session off as a slow consumer.
    pub(super) fn evict(&mut self, sid: u64, why: &'static str, ctx: &mut Context<Self>) {
        if let Some(reg) = self.unregister(sid) {
            BrokerStats::add(&self.stats.slow_consumer_disconnects, 1);
            warn!(
                session = sid,
                user = reg.user_id,
                why,
                "slow consumer: disconnecting session"
            );
            // Waits for room in the mailbox without holding up the router.
            ctx.spawn(actix::fut::wrap_future::<_, Self>(async move {
                let _ = reg.addr.send(Evict { why }).await;
            }));
        }
    }

    /// Whether the clients' output asks the source to wait: one client holds more than
    /// half its budget, or all together more than `limit`. Notes since when each
    /// client has been over half its budget.
    pub(super) fn output_pressure(&mut self, limit: usize) -> bool {
        let high = self.settings.client_high_water_bytes;
        let mut total = 0;
        let mut any_high = false;
        for reg in self.sessions.values_mut() {
            let q = reg.load.queued.load(Relaxed);
            total += q;
            if q > high {
                any_high = true;
                reg.high_since.get_or_insert_with(Instant::now);
            } else {
                reg.high_since = None;
            }
        }
        any_high || total > limit
    }

    /// Answers a held-back batch once the source may send more: nothing waits beyond
    /// the window, no client is over half its budget, and the clients' backlog is down
    /// to half the pacing mark. Meanwhile a client that holds the stream back for
    /// `client_stall` is cut off, so no client can stall the others for longer.
    pub(super) fn maybe_resume(&mut self, ctx: &mut Context<Self>) {
        if self.paused.is_none() || self.reorder.overflowing() {
            return;
        }
        if !self.output_pressure(self.settings.pace_output_bytes / 2) {
            self.paused_since = None;
            if let Some(tx) = self.paused.take() {
                let _ = tx.send(());
            }
            return;
        }
        let stall = self.settings.client_stall;
        let since = *self.paused_since.get_or_insert_with(Instant::now);
        let waited = since.elapsed() >= stall;
        let stuck: Vec<(u64, &'static str)> = self
            .sessions
            .iter()
            .filter_map(|(sid, r)| {
                if r.high_since.is_some_and(|t| t.elapsed() >= stall) {
                    Some((
                        *sid,
                        "over half its output budget for client_stall_ms while the stream waited",
                    ))
                } else if waited && r.load.stalled(stall) {
                    Some((
                        *sid,
                        "its output has not moved for client_stall_ms while the stream waited",
                    ))
                } else {
                    None
                }
            })
            .collect();
        for (sid, why) in stuck {
            self.evict(sid, why, ctx);
        }
        if waited {
            self.paused_since = Some(Instant::now());
        }
        ctx.run_later(Duration::from_millis(2), |act, ctx| act.maybe_resume(ctx));
    }

    pub(super) fn check_gap(&mut self, ctx: &mut Context<Self>, gap: Duration) {
        if self.reorder.held() == 0 {
            self.stalled_since = None;
            return;
        }
        let since = *self.stalled_since.get_or_insert_with(Instant::now);
        if since.elapsed() < gap {
            return;
        }
        if let Some(seq) = self.reorder.skip_missing() {
            BrokerStats::add(&self.stats.maze_gaps_skipped, 1);
            warn!(
                seq,
                waited_ms = since.elapsed().as_millis() as u64,
                "sequence number missing, skipped"
            );
            self.stalled_since = None;
            self.drain();
            self.flush_out(ctx);
            let journaled = self.journal_future();
            ctx.spawn(actix::fut::wrap_future::<_, Self>(journaled));
            self.maybe_resume(ctx);
        }
    }
}
