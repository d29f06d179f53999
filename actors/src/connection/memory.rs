//! A connection's share of the memory budget: its read buffer is charged as it grows,
//! its output through its [`Window`](crate::budget::Window), and it is one of the
//! holders the budget may shed when output fills it.

use actix::prelude::*;
use bytes::BytesMut;
use tracing::{debug, warn};

use super::Connection;
use crate::budget::{Shed, FREE_INPUT_BYTES};
use crate::stats::BrokerStats;
use crate::topic::subscribers::{Credit, SubKey};

/// What one read may add while the budget is full (a ping still fits).
pub(super) const SMALL_READ: usize = 4 << 10;

impl Connection {
    /// Bytes the next read may reserve: none while a partial frame has room reserved
    /// (the read fills that room; growing it would double the buffer), else the size
    /// in force while the budget has room (see `buffers`).
    pub(super) fn read_chunk(&self) -> usize {
        let free = self.rbuf.capacity() - self.rbuf.len();
        if !self.rbuf.is_empty() && free > 0 {
            // `try_read` reserves only when less than a quarter of the chunk is free.
            free
        } else if self.input.budget().has_room() {
            self.read_size.max(super::MIN_READ)
        } else {
            SMALL_READ
        }
    }

    /// Charges what the read buffer holds after a read (at most one chunk more).
    pub(super) fn charge_read(&mut self) {
        self.input.force(self.rbuf.capacity() as u64);
    }

    /// Charges the read buffer before reading on. A frame the codec has reserved room
    /// for (its header is in) needs room in the budget unless it fits the free
    /// allowance; without room the reservation is given back and the connection stops
    /// reading until the budget has room again. False: do not read now.
    pub(super) fn input_fits(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.mem_wait {
            return false;
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() as u64 > FREE_INPUT_BYTES {
            // Room a large frame left behind; the next read would take it back whole.
            self.rbuf = BytesMut::new();
        }
        if self
            .input
            .grow(self.rbuf.capacity() as u64, FREE_INPUT_BYTES)
        {
            return true;
        }
        // Keep the partial frame, not the room reserved for the rest of it.
        let want = self.rbuf.capacity() as u64;
        self.rbuf = BytesMut::from(&self.rbuf[..]);
        self.input.force(self.rbuf.capacity() as u64);
        let budget = self.input.budget().clone();
        // Room for the whole frame (its header is in) before reading on.
        let need = want.saturating_sub(self.input.bytes()).min(budget.limit());
        self.mem_wait = true;
        budget.note_pause();
        debug!(
            held = self.rbuf.len(),
            in_use = budget.in_use(),
            limit = budget.limit(),
            "memory budget full, reading paused"
        );
        let wait = async move { budget.room_for(need).await };
        ctx.spawn(wait.into_actor(self).map(|(), act, ctx| {
            act.mem_wait = false;
            act.last_activity = std::time::Instant::now();
            let _g = act.span.clone().entered();
            debug!("memory budget has room, reading resumed");
            act.process(ctx);
            act.after_input(ctx);
        }));
        false
    }

    /// After output drained: partitions that held records back for want of room in
    /// this connection's window are told to go on.
    pub(super) fn wake_partitions(&mut self) {
        if !self.window.take_starved() {
            return;
        }
        for (sub, state) in &self.subs {
            for (_, addr) in &state.partitions {
                let _ = addr.try_send(Credit {
                    key: SubKey {
                        conn: self.id,
                        sub: sub.clone(),
                    },
                    n: 0,
                });
            }
        }
    }
}

impl Handler<Shed> for Connection {
    type Result = ();

    /// The budget is full of output, and this connection holds the most output it did
    /// not ask for, or (none holding any) it has read nothing for a while: it is cut
    /// off like any slow consumer.
    fn handle(&mut self, s: Shed, ctx: &mut Self::Context) {
        let _g = self.span.clone().entered();
        BrokerStats::add(&self.stats.slow_consumer_disconnects, 1);
        if s.unasked > 0 {
            warn!(
                peer = %self.peer, held = s.held, unasked = s.unasked, limit = s.limit,
                "slow consumer: memory budget full, closing the largest holder of unasked output"
            );
        } else {
            warn!(
                peer = %self.peer, held = s.held, limit = s.limit, stalled_ms = crate::budget::STALLED.as_millis() as u64,
                "slow consumer: memory budget full, closing a peer that reads nothing"
            );
        }
        self.sock.discard();
        self.window.close();
        ctx.stop();
    }
}
