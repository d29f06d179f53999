//! [`EventSource`]: the connection on the maze event port.
//!
//! Each socket read is decoded into one batch for the router, and the socket is not
//! read again until the router has taken that batch: when the router holds a whole
//! reorder window, the source waits, and TCP pushes back on the sender.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use bytes::BytesMut;
use switchyard_codecs::{Frame, FrameCodec, MazeLine, Mode};
use tokio_util::codec::Decoder;
use tracing::{debug, info, warn, Span};

use super::messages::{EventBatch, SourceGone, SourceHello};
use super::reorder::Entry;
use super::router::MazeRouter;
use crate::conn_set::Membership;
use crate::connection::{first_frame_overdue, Accepted, Drain};
use crate::ratelog::SharedRateLog;
use crate::socket::Socket;
use crate::stats::BrokerStats;
use crate::tree::TreeEntry;

/// Read buffer growth step. Under load a read takes whatever the kernel holds, up to
/// this: bigger batches mean fewer writes per client (one per batch), so the broker
/// catches up instead of falling behind; when it keeps up, reads stay small and fast.
const READ_CHUNK: usize = 128 << 10;

#[derive(Debug)]
pub struct EventSource {
    id: u64,
    peer: SocketAddr,
    span: Span,
    sock: Socket,
    codec: FrameCodec,
    rbuf: BytesMut,
    router: Addr<MazeRouter>,
    accepted: bool,
    /// A batch is with the router; nothing is read until it answers.
    in_flight: bool,
    eof: bool,
    malformed: u64,
    /// Malformed lines are counted each; the first few of a source are logged each,
    /// the rest at most once a second with a count.
    malformed_log: crate::ratelog::RateLog,
    /// A whole line has been read (the first-frame deadline no longer applies).
    framed: bool,
    first_frame_timeout: Option<std::time::Duration>,
    first_frame_log: SharedRateLog,
    stats: Arc<BrokerStats>,
    entry: TreeEntry,
    _membership: Membership,
}

impl EventSource {
    pub fn new(a: Accepted, router: Addr<MazeRouter>) -> Self {
        let span = tracing::info_span!("source", id = a.id, peer = %a.peer);
        EventSource {
            id: a.id,
            peer: a.peer,
            span,
            sock: Socket::new(Rc::new(a.stream), 0, a.stats.clone()),
            codec: FrameCodec::new(Mode::Maze, a.settings.limits),
            rbuf: BytesMut::new(),
            router,
            accepted: false,
            in_flight: false,
            eof: false,
            malformed: 0,
            malformed_log: crate::ratelog::RateLog::new(std::time::Duration::from_secs(1)),
            framed: false,
            first_frame_timeout: a.settings.first_frame_timeout,
            first_frame_log: a.first_frame_log,
            stats: a.stats,
            entry: a.entry,
            _membership: a.membership,
        }
    }

    fn wait_readable(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.eof {
            return;
        }
        self.sock.wait_readable(
            ctx,
            &self.span,
            |a| &mut a.sock,
            |act, r, ctx| {
                if let Err(e) = r {
                    debug!(error = %e, "read error");
                    return act.finish(ctx);
                }
                act.on_readable(ctx)
            },
        );
    }

    fn on_readable(&mut self, ctx: &mut Context<Self>) {
        match self.sock.try_read(&mut self.rbuf, READ_CHUNK) {
            Ok(0) => {
                self.eof = true;
                self.process(ctx);
            }
            Ok(_) => {
                self.process(ctx);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.wait_readable(ctx),
            Err(e) => {
                debug!(error = %e, "read error");
                self.finish(ctx);
            }
        }
    }

    /// Whether to log this malformed line: each of a source's first 16, then one a
    /// second (`Some(lines left out since the last one)`).
    fn log_malformed(&mut self) -> Option<u64> {
        if self.malformed <= 16 {
            return Some(0);
        }
        self.malformed_log.allow()
    }

    /// Decodes everything buffered into one batch and hands it to the router.
    fn process(&mut self, ctx: &mut Context<Self>) {
        let mut entries = Vec::with_capacity(self.rbuf.len() / 12 + 1);
        loop {
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.rbuf)
            } else {
                self.codec.decode(&mut self.rbuf)
            };
            match decoded {
                Ok(Some(Frame::Maze(MazeLine::Event(e)))) => {
                    entries.push((e.seq, Entry::Event(e.kind)))
                }
                Ok(Some(other)) => {
                    self.malformed += 1;
                    if let Some(suppressed) = self.log_malformed() {
                        warn!(peer = %self.peer, line = %other, suppressed, "not an event line, dropped");
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.malformed += 1;
                    BrokerStats::add(&self.stats.malformed_frames, 1);
                    let logged = self.log_malformed();
                    match (e.maze_seq(), logged) {
                        (Some(seq), Some(suppressed)) => {
                            warn!(peer = %self.peer, offset = e.offset, seq, reason = %e.kind, suppressed, "malformed event, its sequence number is consumed as a no-op");
                        }
                        (None, Some(suppressed)) => {
                            warn!(peer = %self.peer, offset = e.offset, reason = %e.kind, suppressed, "malformed event without a sequence number, dropped")
                        }
                        _ => {}
                    }
                    if let Some(seq) = e.maze_seq() {
                        entries.push((seq, Entry::Skip));
                    }
                }
            }
        }
        BrokerStats::add(&self.stats.frames_in, entries.len() as u64);
        self.framed |= self.codec.consumed() > 0;
        if entries.is_empty() {
            return self.after_batch(ctx);
        }
        self.in_flight = true;
        let batch = EventBatch {
            source: self.id,
            entries,
        };
        ctx.spawn(self.router.send(batch).into_actor(self).map(|r, act, ctx| {
            act.in_flight = false;
            match r {
                Ok(Ok(())) => act.after_batch(ctx),
                _ => {
                    let _g = act.span.clone().entered();
                    warn!(peer = %act.peer, "the router dropped this source, closing");
                    act.finish(ctx);
                }
            }
        }));
    }

    fn after_batch(&mut self, ctx: &mut Context<Self>) {
        if self.eof || self.sock.closing().is_some() {
            self.finish(ctx);
        } else {
            self.wait_readable(ctx);
        }
    }

    fn finish(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Actor for EventSource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(t) = self.first_frame_timeout {
            // A source that connects and says nothing must not hold the stream's slot.
            ctx.run_later(t, move |act, ctx| {
                if !act.framed && act.sock.closing().is_none() {
                    let _g = act.span.clone().entered();
                    first_frame_overdue(&act.stats, &act.first_frame_log, act.peer, t);
                    act.sock.stop_reading(ctx);
                    act.finish(ctx);
                }
            });
        }
        let hello = SourceHello {
            id: self.id,
            peer: self.peer,
        };
        ctx.wait(self.router.send(hello).into_actor(self).map(|r, act, ctx| {
            let _g = act.span.clone().entered();
            match r {
                Ok(Ok(())) => {
                    act.accepted = true;
                    act.entry.set_detail("streaming");
                    act.on_readable(ctx);
                }
                Ok(Err(reason)) => {
                    warn!(peer = %act.peer, reason, "event source refused");
                    ctx.stop();
                }
                Err(_) => ctx.stop(),
            }
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let _g = self.span.clone().entered();
        if self.accepted {
            if let Err(e) = self.router.try_send(SourceGone { id: self.id }) {
                warn!(error = %e, "could not tell the router this source is gone");
            }
            info!(peer = %self.peer, consumed = self.codec.consumed(), malformed = self.malformed, "event source closed");
        }
    }
}

impl Handler<Drain> for EventSource {
    type Result = ();

    /// A batch already with the router is still applied; nothing more is read.
    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) {
        self.sock.close(ctx, "shutdown");
    }
}
