//! [`Session`]: one user client on the maze client port.
//!
//! It reads one id line (digits, within `id_timeout_ms`), registers with the router,
//! and from then on writes the chunks the router sends it, one `write(2)` each, under
//! the output budget. It keeps reading only to see the peer close.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use switchyard_codecs::{Frame, FrameCodec, Limits, MazeLine, Mode};
use tokio_util::codec::Decoder;
use tracing::{debug, warn, Span};

use super::load::SessionLoad;
use super::messages::{Register, Unregister};
use super::router::MazeRouter;
use crate::conn_set::Membership;
use crate::connection::{Accepted, Drain};
use crate::outbox::Full;
use crate::ratelog::SharedRateLog;
use crate::socket::{wait_writable, Flushed, Socket};
use crate::stats::BrokerStats;
use crate::tree::TreeEntry;

/// Longest id line: 20 digits, CRLF, and room to say what was wrong with a longer one.
const ID_LINE_MAX: usize = 64;

/// Notifications for this client, already framed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Bytes);

/// The router gave up on this session as a slow consumer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Evict {
    pub why: &'static str,
}

#[derive(Debug)]
pub struct Session {
    id: u64,
    peer: SocketAddr,
    span: Span,
    codec: FrameCodec,
    rbuf: BytesMut,
    sock: Socket,
    router: Addr<MazeRouter>,
    id_timeout: Duration,
    user: Option<u64>,
    registered: bool,
    /// Unsent output, for the router's pacing.
    load: Arc<SessionLoad>,
    stats: Arc<BrokerStats>,
    first_frame_log: SharedRateLog,
    entry: TreeEntry,
    _membership: Membership,
}

impl Session {
    pub fn new(a: Accepted, router: Addr<MazeRouter>, id_timeout: Duration) -> Self {
        let span =
            tracing::info_span!("session", id = a.id, peer = %a.peer, user = tracing::field::Empty);
        let stream = Rc::new(a.stream);
        let limits = Limits {
            max_line_bytes: ID_LINE_MAX,
            ..a.settings.limits
        };
        Session {
            id: a.id,
            peer: a.peer,
            span,
            sock: Socket::new(stream, a.settings.output_buffer_bytes, a.stats.clone()),
            codec: FrameCodec::new(Mode::Maze, limits),
            rbuf: BytesMut::new(),
            router,
            id_timeout,
            user: None,
            registered: false,
            load: Arc::default(),
            stats: a.stats,
            first_frame_log: a.first_frame_log,
            entry: a.entry,
            _membership: a.membership,
        }
    }

    fn wait_readable(&mut self, ctx: &mut Context<Self>) {
        self.sock.wait_readable(
            ctx,
            &self.span,
            |a| &mut a.sock,
            |act, r, ctx| match r {
                Ok(()) => act.on_readable(ctx),
                Err(e) => act.sock.abort(ctx, "read error", &e),
            },
        );
    }

    fn on_readable(&mut self, ctx: &mut Context<Self>) {
        match self.sock.try_read(&mut self.rbuf, 1024) {
            Ok(0) => {
                if self.user.is_none() {
                    self.read_id(ctx, true);
                }
                self.sock.close(ctx, "peer closed");
            }
            Ok(_) => {
                if self.user.is_none() {
                    self.read_id(ctx, false);
                } else {
                    // A client sends nothing after its id; whatever comes is ignored.
                    self.rbuf.clear();
                }
                self.wait_readable(ctx);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.wait_readable(ctx),
            Err(e) => self.sock.abort(ctx, "read error", &e),
        }
    }

    fn read_id(&mut self, ctx: &mut Context<Self>, eof: bool) {
        let decoded = if eof {
            self.codec.decode_eof(&mut self.rbuf)
        } else {
            self.codec.decode(&mut self.rbuf)
        };
        let user = match decoded {
            Ok(None) => return,
            Ok(Some(Frame::Maze(MazeLine::UserId(user)))) => user,
            Ok(Some(other)) => {
                warn!(peer = %self.peer, line = %other, "bad id line: expected a user id, closing");
                return self.sock.close(ctx, "bad id line");
            }
            Err(e) => {
                warn!(peer = %self.peer, offset = e.offset, reason = %e.kind, "bad id line, closing");
                return self.sock.close(ctx, "bad id line");
            }
        };
        self.rbuf.clear();
        self.user = Some(user);
        self.span.record("user", user);
        self.entry.set_detail(format!("user {user}"));
        let register = Register {
            session: self.id,
            user,
            addr: ctx.address(),
            load: self.load.clone(),
        };
        ctx.spawn(
            self.router
                .send(register)
                .into_actor(self)
                .map(|r, act, ctx| match r {
                    Ok(Ok(())) => act.registered = true,
                    Ok(Err(reason)) => {
                        warn!(peer = %act.peer, reason, "registration refused, closing");
                        act.sock.close(ctx, "registration refused");
                    }
                    Err(_) => act.sock.close(ctx, "router gone"),
                }),
        );
    }

    fn slow_consumer(&mut self, ctx: &mut Context<Self>, full: Full) {
        BrokerStats::add(&self.stats.slow_consumer_disconnects, 1);
        warn!(peer = %self.peer, user = self.user, queued = full.queued, budget = full.budget, "slow consumer: output budget full, disconnecting");
        self.sock.discard();
        ctx.stop();
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        let before = self.sock.written();
        let flushed = self.sock.flush();
        self.load
            .update(self.sock.queued(), self.sock.written() > before);
        match flushed {
            Flushed::Done if self.sock.closing().is_some() => self.sock.finish(ctx),
            Flushed::Done => {}
            Flushed::Blocked => wait_writable(
                &mut self.sock,
                ctx,
                |a| &mut a.sock,
                |act, r, ctx| match r {
                    Ok(()) => act.flush(ctx),
                    Err(e) => act.sock.abort(ctx, "write error", &e),
                },
            ),
            Flushed::Failed(e) => self.sock.abort(ctx, "write error", &e),
        }
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        let timeout = self.id_timeout;
        ctx.run_later(timeout, move |act, ctx| {
            if act.user.is_none() && act.sock.closing().is_none() {
                let _g = act.span.clone().entered();
                // The id line is a client's first frame: counted with the other
                // first-frame timeouts, logged within the listener's line budget.
                BrokerStats::add(&act.stats.first_frame_timeouts, 1);
                if let Some(suppressed) = act.first_frame_log.allow() {
                    warn!(peer = %act.peer, id_timeout_ms = timeout.as_millis() as u64, suppressed, "no id line in time, closing");
                }
                act.sock.close(ctx, "id timeout");
            }
        });
        // A restarted router has forgotten this session: close, the client reconnects.
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            if !act.router.connected() {
                act.sock.close(ctx, "router restarted");
            }
        });
        let _g = self.span.clone().entered();
        self.on_readable(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.registered {
            // Control path; the router's mailbox holds 64 Ki messages.
            if let Err(e) = self.router.try_send(Unregister { session: self.id }) {
                warn!(session = self.id, error = %e, "could not unregister session");
            }
        }
        let _g = self.span.clone().entered();
        debug!(
            reason = self.sock.closing().unwrap_or("stopped"),
            "session closed"
        );
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, Deliver(chunk): Deliver, ctx: &mut Self::Context) {
        if self.sock.closing().is_some() {
            return;
        }
        let before = self.sock.written();
        let written = self.sock.write_through(&chunk);
        self.load
            .update(self.sock.queued(), self.sock.written() > before);
        match written {
            Ok(Flushed::Done) => {}
            Ok(Flushed::Blocked) => self.flush(ctx),
            Ok(Flushed::Failed(e)) => self.sock.abort(ctx, "write error", &e),
            Err(full) => self.slow_consumer(ctx, full),
        }
    }
}

impl Handler<Evict> for Session {
    type Result = ();

    fn handle(&mut self, evict: Evict, ctx: &mut Self::Context) {
        self.registered = false;
        let _g = self.span.clone().entered();
        warn!(peer = %self.peer, user = self.user, why = evict.why, "slow consumer: cut off by the router");
        self.sock.discard();
        ctx.stop();
    }
}

impl Handler<Drain> for Session {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) {
        let _g = self.span.clone().entered();
        self.sock.close(ctx, "shutdown");
    }
}
