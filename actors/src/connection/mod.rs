//! A broker-port peer: reads and frames its input, answers or routes each frame, and
//! writes its output in one `write(2)` per batch under a byte budget.
//!
//! Reads and writes happen inside the actor (`try_read_buf` / `try_write` when the
//! socket is ready), so a whole socket read is decoded and handled in one turn and
//! its replies leave together.
//!
//! - `buffers`: the read buffer follows the traffic, and goes when the peer is quiet.
//! - `login`: `auth login`, the login deadline, and permission checks.
//! - `memory`: the connection's share of the broker's memory budget.
//! - `output`: answers (paced), output that arrives on its own time (budgeted), the
//!   flush.
//! - `publish`: publishes of one read, sent to the registry together.
//! - `routed`: oversize frames, and frames routed to the driver host.
//! - `topics`: the `topic` channel: subscriptions, credit, groups, deliveries.
//! - `topic_delete`: `topic delete`, and subscribers told their topic is gone.
//! - `tls`: what the connection learns from its TLS session: the handshake's end, the
//!   client certificate's name ([`Connection::tls_identity`]), failures. The socket
//!   itself decrypts and seals (see [`crate::tls::session`]).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::BytesMut;
use switchyard_codecs::{Frame, FrameCodec, Mode};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use tracing::{debug, info, warn, Span};

mod buffers;
mod login;
mod memory;
mod output;
mod publish;
mod routed;
mod tls;
mod topic_delete;
mod topics;

use crate::budget::{Held, Window};
use crate::conn_set::Membership;
use crate::drivers::{ClientGone, DriverHost};
use crate::ratelog::SharedRateLog;
use crate::settings::ConnectionSettings;
use crate::socket::Socket;
use crate::stats::BrokerStats;
use crate::topic::registry::TopicRegistry;
use crate::topic::Partition;
use crate::tree::TreeEntry;

pub use buffers::MIN_READ;

/// The largest read buffer a busy connection grows to (see `buffers`).
pub const READ_CHUNK: usize = 64 << 10;

/// Messages a connection's mailbox holds: RPC returns and event-bus messages arrive
/// there, many in one turn of the driver host.
const RETURNS_MAILBOX: usize = 16 * 1024;

/// The reply to `command ping`.
const ALIVE: &[u8] = b"state alive 0 0\n";

/// Finish queued output, then close (used at shutdown).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// One topic subscription of a connection.
#[derive(Debug)]
pub(crate) struct SubState {
    /// Set for a consumer-group member.
    group: Option<String>,
    /// Credit granted to each partition when it is assigned.
    credit: u64,
    /// Records per `topic deliver` (the `batch` label; 1: one envelope per record).
    batch: usize,
    /// The partitions it reads now.
    partitions: Vec<(u32, Addr<Partition>)>,
    /// `topic subscribed` has been sent; an assignment before it waits here.
    confirmed: bool,
    early: Option<crate::topic::registry::groups::Assignment>,
}

/// What the broker port's connections can reach besides themselves.
#[derive(Debug, Clone)]
pub struct Services {
    pub topics: Option<Addr<TopicRegistry>>,
    pub drivers: Option<Addr<DriverHost>>,
    /// `[auth]`: users and the login throttle; `None`: no logins, everything allowed.
    pub auth: Option<crate::auth::Auth>,
    /// The port's line budget for login failures.
    pub auth_log: SharedRateLog,
}

/// What a listener hands the actor it starts for a new peer.
#[derive(Debug)]
pub struct Accepted {
    pub id: u64,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub settings: ConnectionSettings,
    pub stats: Arc<BrokerStats>,
    pub entry: TreeEntry,
    pub membership: Membership,
    /// The listener's line budget for first-frame timeouts.
    pub first_frame_log: SharedRateLog,
}

/// Closes `act`'s connection when it has sent no complete frame yet: a peer that only
/// connects must not hold a connection slot for ever. Logged within the listener's line
/// budget and counted.
pub(crate) fn first_frame_overdue(
    stats: &BrokerStats,
    log: &SharedRateLog,
    peer: SocketAddr,
    timeout: Duration,
) {
    BrokerStats::add(&stats.first_frame_timeouts, 1);
    if let Some(suppressed) = log.allow() {
        warn!(peer = %peer, first_frame_timeout_ms = timeout.as_millis() as u64, suppressed, "no complete frame in time, closing");
    }
}

#[derive(Debug)]
pub struct Connection {
    id: u64,
    peer: SocketAddr,
    span: Span,
    codec: FrameCodec,
    rbuf: BytesMut,
    /// What the next read reserves: 0 until the first read and after a quiet spell,
    /// then [`MIN_READ`] doubling with the traffic up to [`READ_CHUNK`].
    read_size: usize,
    /// The `read_size` the tree and the broker-wide sum were last told.
    shown_read_size: usize,
    /// A look at whether the connection has gone quiet is due.
    release_armed: bool,
    sock: Socket,
    settings: ConnectionSettings,
    stats: Arc<BrokerStats>,
    /// Input is left unread until output drains (slow-consumer policy `block`).
    paused: bool,
    /// A write of the answers queued so far is due once this turn's replies are in.
    pub(crate) flush_due: bool,
    /// The clock read once per pass over what a read brought (0: not yet): the
    /// timestamp of every record published in it.
    clock_ms: u64,
    /// Requests sent on and not yet answered.
    inflight: usize,
    /// Shutting down: no more input, close once the answers are out.
    draining: bool,
    services: Services,
    /// Publishes decoded from the current read, sent together at its end.
    publishes: Vec<(crate::topic::registry::Publish, Option<bytes::Bytes>)>,
    /// This connection's topic subscriptions, by the client's `sub` name.
    subs: std::collections::HashMap<String, SubState>,
    /// The peer has finished sending; close once its input is handled.
    eof: bool,
    /// It made RPC calls or subscribed to events: the host is told when it closes.
    talks_to_drivers: bool,
    proto_known: bool,
    /// A whole frame has been decoded (the first-frame deadline no longer applies).
    framed: bool,
    first_frame_log: SharedRateLog,
    last_activity: Instant,
    entry: TreeEntry,
    _membership: Membership,
    /// The read buffer's charge to the memory budget.
    input: Held,
    /// Queued output and deliveries on their way, charged to the memory budget.
    window: Arc<Window>,
    /// Reading waits for room in the memory budget.
    mem_wait: bool,
    /// Who this connection acts for, and its cached permission decisions.
    login: login::LoginState,
    auth_log: SharedRateLog,
    /// The verified client certificate's name (CN, else the first DNS or e-mail SAN),
    /// once a mutual-TLS handshake has finished: a connection whose name is a
    /// configured user is that user, and needs no login frame.
    tls_identity: Option<String>,
    /// The port speaks TLS but no session could be made: close at once.
    tls_unusable: bool,
}

impl Connection {
    /// A connection for `a`; with `tls`, it speaks TLS from the first byte.
    pub fn new(a: Accepted, services: Services, tls: Option<&Arc<rustls::ServerConfig>>) -> Self {
        let span = tracing::info_span!("conn", id = a.id, peer = %a.peer, proto = tracing::field::Empty, user = tracing::field::Empty);
        let stream = Rc::new(a.stream);
        let mut sock = Socket::new(stream, a.settings.output_buffer_bytes, a.stats.clone());
        // Deliveries stop at half the output budget, so replies still fit beside them.
        let window = Window::new(
            a.stats.memory.clone(),
            a.settings.output_buffer_bytes as u64 / 2,
        );
        sock.set_window(window.clone());
        let required = services.auth.as_ref().is_some_and(|a| a.login_required());
        let mut tls_unusable = false;
        if let Some(config) = tls {
            match crate::tls::TlsSession::new(config.clone()) {
                Ok(session) => sock.set_tls(session),
                Err(e) => {
                    warn!(peer = %a.peer, error = %e, "cannot start a tls session, closing");
                    tls_unusable = true;
                }
            }
        }
        Connection {
            tls_identity: None,
            tls_unusable,
            id: a.id,
            peer: a.peer,
            span,
            sock,
            input: Held::new(a.stats.memory.clone()),
            window,
            mem_wait: false,
            codec: FrameCodec::new(Mode::Detect, a.settings.limits),
            rbuf: BytesMut::new(),
            read_size: 0,
            shown_read_size: 0,
            release_armed: false,
            settings: a.settings,
            stats: a.stats,
            paused: false,
            flush_due: false,
            clock_ms: 0,
            inflight: 0,
            draining: false,
            services: services.clone(),
            publishes: Vec::new(),
            subs: std::collections::HashMap::new(),
            eof: false,
            talks_to_drivers: false,
            proto_known: false,
            framed: false,
            first_frame_log: a.first_frame_log,
            last_activity: Instant::now(),
            login: login::LoginState::new(required),
            auth_log: services.auth_log.clone(),
            entry: a.entry,
            _membership: a.membership,
        }
    }

    fn wait_readable(&mut self, ctx: &mut Context<Self>) {
        if self.paused || self.login.pending || !self.input_fits(ctx) {
            return;
        }
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
        let chunk = self.read_chunk();
        let read = self.sock.try_read(&mut self.rbuf, chunk);
        self.charge_read();
        if let Some(name) = self.sock.take_established() {
            self.tls_established(name);
        }
        match read {
            Ok(0) => {
                self.eof = true;
                self.process(ctx);
                self.after_input(ctx);
            }
            Ok(n) => {
                self.last_activity = Instant::now();
                self.after_read(n, ctx);
                self.process(ctx);
                self.after_input(ctx);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if self.sock.tls_pending() {
                    // Handshake answers: they go out though the client has said nothing.
                    self.flush(ctx);
                }
                self.wait_readable(ctx)
            }
            Err(e) => match crate::tls::TlsFailure::of(&e) {
                Some(f) => self.tls_failed(f, ctx),
                None => self.sock.abort(ctx, "read error", &e),
            },
        }
    }

    /// Decodes and handles every complete frame buffered, then writes the replies.
    fn process(&mut self, ctx: &mut Context<Self>) {
        // Answers are paced by reading requests no faster than they are taken: a
        // peer that does not read what it asked for stops being read.
        let high_water = self.high_water();
        self.clock_ms = 0;
        while self.sock.closing().is_none() {
            if self.sock.queued() >= high_water || self.inflight >= self.settings.max_inflight {
                self.paused = true;
                break;
            }
            if self.login.pending {
                // The frames after a login are handled as the user it names.
                break;
            }
            let buffered = self.rbuf.len();
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.rbuf)
            } else {
                self.codec.decode(&mut self.rbuf)
            };
            match decoded {
                Ok(Some(frame)) => {
                    self.framed = true;
                    BrokerStats::add(&self.stats.frames_in, 1);
                    self.note_protocol();
                    self.handle_frame(frame, ctx);
                }
                Ok(None) => break,
                // A client that stops (killed, or closing early) is not a broken one.
                Err(e) if e.is_truncated() => {
                    info!(peer = %self.peer, buffered, reason = %e.kind, "peer closed mid-frame, closing connection");
                    self.sock.close(ctx, "peer closed mid-frame");
                }
                Err(e) => {
                    self.note_protocol();
                    BrokerStats::add(&self.stats.malformed_frames, 1);
                    warn!(peer = %self.peer, offset = e.offset, reason = %e.kind, "malformed frame, closing connection");
                    self.sock.close(ctx, "malformed frame");
                }
            }
        }
        self.send_publishes(ctx);
        self.flush(ctx);
    }

    /// The time stamped on records published in this pass: one clock read per read,
    /// not per record.
    fn clock_ms(&mut self) -> u64 {
        if self.clock_ms == 0 {
            self.clock_ms = crate::topic::wire::now_ms();
        }
        self.clock_ms
    }

    fn note_protocol(&mut self) {
        if !self.proto_known {
            self.proto_known = true;
            let proto = if self.codec.mode() == Mode::Maze {
                "maze"
            } else {
                "dipper"
            };
            self.span.record("proto", proto);
            self.entry.set_detail(self.detail());
        }
    }

    fn handle_frame(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        let Some(frame) = self.gate(frame, ctx) else {
            return;
        };
        match frame {
            Frame::Envelope(env) if env.is("command", "ping") => {
                self.reply(bytes::Bytes::from_static(ALIVE))
            }
            Frame::Envelope(env) if env.channel == "topic" => self.topic_request(env, ctx),
            Frame::Envelope(env)
                if matches!(
                    &*env.channel,
                    "rpc" | "eventbus" | "chat" | "driver" | "state"
                ) =>
            {
                self.driver_frame(env, ctx)
            }
            Frame::Envelope(env) => {
                debug!(channel = %env.channel, subject = %env.subject, "no route, frame dropped")
            }
            Frame::Maze(line) => debug!(line = %line, "maze line on the broker port, dropped"),
            Frame::Oversize(o) => self.oversize(o, ctx),
        }
    }

    /// After input was handled: go on reading, or close once the peer has finished
    /// (or shutdown asked) and every answer is out.
    fn after_input(&mut self, ctx: &mut Context<Self>) {
        if self.paused {
            return;
        }
        if (self.eof || self.draining) && self.inflight == 0 {
            let why = if self.draining {
                "shutdown"
            } else {
                "peer closed"
            };
            self.sock.close(ctx, why);
        } else if !self.eof && !self.draining {
            self.wait_readable(ctx);
        }
    }

    fn check_idle(&mut self, ctx: &mut Context<Self>, idle: Duration) {
        // A connection waiting for memory is silent because the broker is not reading.
        if self.sock.closing().is_none() && !self.mem_wait && self.last_activity.elapsed() >= idle {
            let _g = self.span.clone().entered();
            BrokerStats::add(&self.stats.idle_timeouts, 1);
            info!(peer = %self.peer, idle_ms = idle.as_millis() as u64, "idle timeout, closing connection");
            self.sock.close(ctx, "idle timeout");
        }
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _g = self.span.clone().entered();
        // Frames routed to it come in bursts of one host turn (calls to a remote driver
        // or `client:<id>`, and the returns of its own calls, handed over with
        // `try_send`): at actix's default of 16, the 17th return of calls made together
        // was dropped and its caller waited for ever. The output budget bounds bytes.
        ctx.set_mailbox_capacity(RETURNS_MAILBOX);
        debug!(path = %self.entry.path(), "connection open");
        self.entry.set_detail(self.detail());
        if let Some(idle) = self.settings.idle_timeout {
            let every = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
            ctx.run_interval(every, move |act, ctx| act.check_idle(ctx, idle));
        }
        if let Some(t) = self.settings.first_frame_timeout {
            ctx.run_later(t, move |act, ctx| {
                if !act.framed && act.sock.closing().is_none() {
                    let _g = act.span.clone().entered();
                    first_frame_overdue(&act.stats, &act.first_frame_log, act.peer, t);
                    act.sock.close(ctx, "first-frame timeout");
                }
            });
        }
        self.start_login_deadline(ctx);
        self.window.register(ctx.address().recipient());
        if self.tls_unusable {
            return ctx.stop();
        }
        // No buffer before the first byte: a peer that connects and says nothing
        // costs none.
        self.wait_readable(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let _g = self.span.clone().entered();
        self.window.close();
        self.forget_buffers();
        for (sub, state) in std::mem::take(&mut self.subs) {
            self.forget(&sub, state);
        }
        if let (true, Some(host)) = (self.talks_to_drivers, &self.services.drivers) {
            let _ = host.try_send(ClientGone(self.id));
        }
        debug!(
            reason = self.sock.closing().unwrap_or("stopped"),
            "connection closed"
        );
    }
}

/// Writes the answers queued in this turn (sent to itself, so every reply that became
/// ready in the same turn is in before the write).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct FlushAnswers;

impl Handler<FlushAnswers> for Connection {
    type Result = ();

    fn handle(&mut self, _: FlushAnswers, ctx: &mut Self::Context) {
        self.flush_due = false;
        let _g = self.span.clone().entered();
        self.flush(ctx);
    }
}

impl Handler<Drain> for Connection {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) {
        let _g = self.span.clone().entered();
        self.draining = true;
        self.sock.stop_reading(ctx);
        if self.inflight == 0 {
            self.sock.close(ctx, "shutdown");
        }
    }
}
