//! A connection's output: answers to its own requests (paced by reading requests no
//! faster than answers are taken), output that arrives on its own time (under the
//! output budget and the slow-consumer policy), and the flush that writes it.

use std::time::Instant;

use actix::prelude::*;
use bytes::BytesMut;
use switchyard_codecs::Envelope;
use tracing::warn;

use super::Connection;
use crate::drivers::ToClient;
use crate::outbox::Full;
use crate::socket::{wait_writable, Flushed};
use crate::stats::BrokerStats;

/// `env` as bytes; `None` (logged) if it cannot be encoded.
fn encoded(env: &Envelope) -> Option<BytesMut> {
    let mut buf = BytesMut::with_capacity(env.encoded_len());
    match env.encode(&mut buf) {
        Ok(()) => Some(buf),
        Err(e) => {
            warn!(error = %e, channel = %env.channel, subject = %env.subject, "a frame could not be encoded");
            None
        }
    }
}

impl Connection {
    /// Queues the answer to one of the peer's requests.
    pub(super) fn send_envelope(&mut self, env: &Envelope, _ctx: &mut Context<Self>) {
        if let Some(buf) = encoded(env) {
            self.reply(buf.freeze());
        }
    }

    /// Queued output past which no further request is read.
    pub(super) fn high_water(&self) -> usize {
        self.settings.output_buffer_bytes / 2
    }

    /// Queues one answer. Answers are paced, not refused: no request is read while
    /// half the output budget is queued, so what a peer asks for is bounded by what it
    /// takes (see [`Connection::process`]).
    pub(super) fn reply(&mut self, bytes: bytes::Bytes) {
        self.sock.push_paced(bytes);
        BrokerStats::add(&self.stats.frames_out, 1);
    }

    /// Queues output that arrives on its own time under the output budget and the
    /// slow-consumer policy: what the peer did not ask for (event-bus messages, calls
    /// to a service it offers, chat), and the returns of its RPC calls, whose number
    /// and size the peer's input does not bound. It cannot be read again, so a peer
    /// that does not take it loses it. A return is always taken while less than half
    /// the budget is queued, so one answer as large as the budget (a fetch of
    /// `topics.max_fetch_bytes`) still reaches a peer that reads.
    pub(super) fn push_unasked(&mut self, env: &Envelope, ctx: &mut Context<Self>) {
        let Some(buf) = encoded(env) else { return };
        if env.is("rpc", "return") && self.sock.queued() < self.high_water() {
            return self.reply(buf.freeze());
        }
        match self.sock.push(&buf) {
            Ok(()) => BrokerStats::add(&self.stats.frames_out, 1),
            Err(full) => self.slow_consumer(ctx, full),
        }
    }

    pub(super) fn slow_consumer(&mut self, ctx: &mut Context<Self>, full: Full) {
        BrokerStats::add(&self.stats.slow_consumer_disconnects, 1);
        warn!(
            peer = %self.peer, queued = full.queued, budget = full.budget, policy = %self.settings.slow_consumer,
            "slow consumer: output budget full, disconnecting"
        );
        self.sock.discard();
        ctx.stop();
    }

    /// Writes as much queued output as the socket takes; one `write(2)` per batch.
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        let flushed = self.sock.flush();
        self.wake_partitions();
        match flushed {
            Flushed::Done => self.last_activity = Instant::now(),
            Flushed::Blocked => {
                return wait_writable(
                    &mut self.sock,
                    ctx,
                    |a| &mut a.sock,
                    |act, r, ctx| {
                        let span = act.span.clone();
                        let _g = span.enter();
                        match r {
                            Ok(()) => act.flush(ctx),
                            Err(e) => act.sock.abort(ctx, "write error", &e),
                        }
                    },
                )
            }
            Flushed::Failed(e) => return self.sock.abort(ctx, "write error", &e),
        }
        if self.sock.closing().is_some() {
            self.sock.finish(ctx);
        } else if self.paused && self.inflight < self.settings.max_inflight {
            self.paused = false;
            self.process(ctx);
            self.after_input(ctx);
        }
    }
}

impl Handler<ToClient> for Connection {
    type Result = ();

    fn handle(&mut self, ToClient(env): ToClient, ctx: &mut Self::Context) {
        let _g = self.span.clone().entered();
        if self.sock.closing().is_none() {
            self.push_unasked(&env, ctx);
            // Returns and calls routed here in one turn (64 calls read at once come
            // back as 64 messages) leave in one write, at the end of the turn: a
            // write per message made syscalls most of a busy caller's cost.
            if self.sock.queued() >= super::topics::ANSWER_BATCH_BYTES {
                self.flush(ctx);
            } else if !self.flush_due {
                self.flush_due = true;
                ctx.notify(super::FlushAnswers);
            }
        }
    }
}
