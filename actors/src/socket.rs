//! The socket half every connection-like actor shares: reads wait for readiness,
//! writes go through a budgeted [`Outbox`] (`try_write` until the socket would block,
//! then one `writable()` wait), and closing flushes, half-closes, then stops.
//!
//! On a TLS port the socket carries a [`TlsSession`]: reads decrypt into the caller's
//! buffer, and a flush seals the queued plaintext into records first. Without one the
//! path is the plain one, byte for byte (one `Option` test per read and per flush).

use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use actix::prelude::*;
use tokio::net::TcpStream;
use tracing::{debug, Span};

use crate::budget::Window;
use crate::outbox::{Full, Outbox, MAX_SLICES};
use crate::stats::BrokerStats;
use crate::tls::TlsSession;

/// What a flush achieved.
#[derive(Debug)]
pub enum Flushed {
    /// Everything queued was written.
    Done,
    /// The socket would block; call [`wait_writable`] and flush again.
    Blocked,
    Failed(io::Error),
}

#[derive(Debug)]
pub struct Socket {
    stream: Rc<TcpStream>,
    out: Outbox,
    stats: Arc<BrokerStats>,
    /// A `writable()` wait is in flight.
    pub waiting: bool,
    written: u64,
    /// A `readable()` wait in flight.
    reading: Option<SpawnHandle>,
    /// Flushing, then closing, for this reason.
    closing: Option<&'static str>,
    /// Queued output is charged here (the memory budget), when set: once per flush,
    /// not per frame (what one turn queues is bounded by the outbox's own budget).
    window: Option<Arc<Window>>,
    /// What `window` has been charged for.
    charged: usize,
    /// The TLS session, on a TLS port. Its sealed records count as queued output.
    tls: Option<Box<TlsSession>>,
}

impl Socket {
    pub fn new(stream: Rc<TcpStream>, budget: usize, stats: Arc<BrokerStats>) -> Self {
        Socket {
            stream,
            out: Outbox::new(budget),
            stats,
            waiting: false,
            written: 0,
            reading: None,
            closing: None,
            window: None,
            charged: 0,
            tls: None,
        }
    }

    /// Speaks TLS from now on (before anything was read).
    pub fn set_tls(&mut self, session: TlsSession) {
        self.tls = Some(Box::new(session));
    }

    /// The TLS handshake has just finished: the client certificate's name, if any.
    /// Returned once.
    pub fn take_established(&mut self) -> Option<Option<String>> {
        self.tls.as_mut()?.take_established()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// TLS records (handshake answers, alerts) are waiting for the socket.
    pub fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| !t.pending().is_empty())
    }

    /// Charges queued output to `window` from now on.
    pub fn set_window(&mut self, window: Arc<Window>) {
        self.window = Some(window);
        self.sync_charge();
    }

    /// Brings the window's charge to what is queued now.
    fn sync_charge(&mut self) {
        let now = self.queued();
        let Some(w) = &self.window else { return };
        w.set_unasked(self.out.unasked() as u64);
        if now > self.charged {
            w.charge((now - self.charged) as u64);
        } else if now < self.charged {
            w.release((self.charged - now) as u64);
        }
        self.charged = now;
    }

    pub fn stream(&self) -> &Rc<TcpStream> {
        &self.stream
    }

    /// Bytes written to the socket so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        match &self.tls {
            None => self.out.len(),
            Some(t) => self.out.len() + t.pending().len(),
        }
    }

    pub fn is_idle(&self) -> bool {
        self.queued() == 0 && !self.waiting
    }

    /// Queues `bytes` under the budget (sealed records included).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Full> {
        if let Some(t) = &self.tls {
            let sealed = t.pending().len();
            if sealed + self.out.len() + bytes.len() > self.out.budget() {
                return Err(Full {
                    queued: sealed + self.out.len(),
                    budget: self.out.budget(),
                });
            }
        }
        self.out.push(bytes)?;
        self.note_peak();
        Ok(())
    }

    /// Queues `bytes`, paced elsewhere, whatever the budget says (see
    /// [`Outbox::push_paced`]); large ones are queued without a copy.
    pub fn push_paced(&mut self, bytes: bytes::Bytes) {
        self.out.push_paced(bytes);
        self.note_peak();
    }

    fn note_peak(&self) {
        self.stats
            .output_peak_bytes
            .fetch_max(self.out.peak() as u64, Relaxed);
    }

    /// Writes `bytes` straight to the socket when nothing is queued before them, and
    /// queues only what the socket did not take: no copy on the common path.
    pub fn write_through(&mut self, bytes: &[u8]) -> Result<Flushed, Full> {
        if self.tls.is_some() {
            self.push(bytes)?;
            return Ok(self.flush());
        }
        if !self.is_idle() {
            self.push(bytes)?;
            return Ok(Flushed::Blocked);
        }
        match self.write_once(bytes) {
            Ok(n) if n == bytes.len() => Ok(Flushed::Done),
            Ok(n) => {
                self.push(&bytes[n..])?;
                Ok(Flushed::Blocked)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.push(bytes)?;
                Ok(Flushed::Blocked)
            }
            Err(e) => Ok(Flushed::Failed(e)),
        }
    }

    fn write_once(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.stream.try_write(bytes)?;
        self.written += n as u64;
        BrokerStats::add(&self.stats.bytes_out, n as u64);
        BrokerStats::add(&self.stats.socket_writes, 1);
        Ok(n)
    }

    /// Writes what is queued until done or the socket would block.
    pub fn flush(&mut self) -> Flushed {
        let flushed = self.flush_queued();
        self.sync_charge();
        flushed
    }

    fn flush_queued(&mut self) -> Flushed {
        if self.waiting {
            return Flushed::Blocked;
        }
        if self.tls.is_some() {
            return self.flush_sealed();
        }
        while !self.out.is_empty() {
            let mut slices = [std::io::IoSlice::new(&[]); MAX_SLICES];
            let k = self.out.slices(&mut slices);
            let wrote = if k == 1 {
                self.stream.try_write(&slices[0])
            } else {
                self.stream.try_write_vectored(&slices[..k])
            };
            match wrote {
                Ok(n) => {
                    self.out.consume(n);
                    self.written += n as u64;
                    BrokerStats::add(&self.stats.bytes_out, n as u64);
                    BrokerStats::add(&self.stats.socket_writes, 1);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(e) => return Flushed::Failed(e),
            }
        }
        Flushed::Done
    }

    /// Seals what is queued and writes the records until done or the socket would
    /// block.
    fn flush_sealed(&mut self) -> Flushed {
        let Some(tls) = self.tls.as_mut() else {
            return Flushed::Done;
        };
        loop {
            if let Err(e) = tls.seal(&mut self.out) {
                return Flushed::Failed(e);
            }
            if tls.pending().is_empty() {
                return Flushed::Done;
            }
            match self.stream.try_write(tls.pending()) {
                Ok(n) => {
                    tls.consume(n);
                    self.written += n as u64;
                    BrokerStats::add(&self.stats.bytes_out, n as u64);
                    BrokerStats::add(&self.stats.socket_writes, 1);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(e) => return Flushed::Failed(e),
            }
        }
    }

    /// Gives back output room that holds nothing (the connection has gone quiet).
    pub fn release_spare(&mut self) {
        self.out.release_spare();
        if let Some(t) = self.tls.as_mut() {
            t.release_spare();
        }
    }

    /// Drops whatever is queued (the peer is being cut off).
    pub fn discard(&mut self) {
        self.out.clear();
        if let Some(t) = self.tls.as_mut() {
            t.discard();
        }
        self.sync_charge();
    }

    /// Reads what the socket holds into `buf`, growing it by `chunk` when less than a
    /// quarter of that is free; counts the bytes in.
    pub fn try_read(&mut self, buf: &mut bytes::BytesMut, chunk: usize) -> io::Result<usize> {
        if let Some(tls) = self.tls.as_mut() {
            let r = tls.read(&self.stream, buf, chunk, &self.stats);
            if r.is_err() {
                // The alert, best effort: the connection is closing anyway.
                let _ = self.stream.try_write(tls.pending());
                tls.discard();
            }
            return r;
        }
        if buf.capacity() - buf.len() < chunk / 4 {
            buf.reserve(chunk);
        }
        let n = self.stream.try_read_buf(buf)?;
        BrokerStats::add(&self.stats.bytes_in, n as u64);
        Ok(n)
    }

    /// Why the socket is closing, once it is.
    pub fn closing(&self) -> Option<&'static str> {
        self.closing
    }

    /// A `readable()` wait is in flight.
    pub fn reading(&self) -> bool {
        self.reading.is_some()
    }

    /// Waits until the socket is readable (`get` finds it in the actor), then calls
    /// `then` inside `span`. Nothing happens once the socket is closing.
    pub fn wait_readable<A>(
        &mut self,
        ctx: &mut Context<A>,
        span: &Span,
        get: fn(&mut A) -> &mut Socket,
        then: fn(&mut A, io::Result<()>, &mut Context<A>),
    ) where
        A: Actor<Context = Context<A>>,
    {
        if self.reading.is_some() || self.closing.is_some() {
            return;
        }
        let (stream, span) = (self.stream.clone(), span.clone());
        let fut = actix::fut::wrap_future::<_, A>(async move { stream.readable().await });
        self.reading = Some(ctx.spawn(fut.map(move |r, act, ctx| {
            get(act).reading = None;
            let _g = span.enter();
            then(act, r, ctx)
        })));
    }

    /// Stops waiting for input (the actor has stopped taking requests).
    pub fn stop_reading<A: Actor<Context = Context<A>>>(&mut self, ctx: &mut Context<A>) {
        if let Some(h) = self.reading.take() {
            ctx.cancel_future(h);
        }
    }

    /// Stops reading, flushes what is queued, then half-closes and stops the actor.
    pub fn close<A: Actor<Context = Context<A>>>(
        &mut self,
        ctx: &mut Context<A>,
        reason: &'static str,
    ) {
        if self.closing.is_some() {
            return;
        }
        debug!(reason, "closing");
        self.closing = Some(reason);
        if let Some(h) = self.reading.take() {
            ctx.cancel_future(h);
        }
        if self.is_idle() {
            self.finish(ctx);
        }
    }

    /// Half-closes, so the peer reads everything sent before it sees EOF, and stops.
    pub fn finish<A: Actor<Context = Context<A>>>(&mut self, ctx: &mut Context<A>) {
        if let Some(tls) = self.tls.as_mut() {
            // close_notify, best effort: the output before it is all written.
            tls.close_notify();
            let _ = self.stream.try_write(tls.pending());
            tls.discard();
        }
        let _ = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
        ctx.stop();
    }

    /// Drops what is queued and stops at once (the socket failed).
    pub fn abort<A: Actor<Context = Context<A>>>(
        &mut self,
        ctx: &mut Context<A>,
        what: &'static str,
        e: &io::Error,
    ) {
        debug!(error = %e, "{what}, closing");
        self.discard();
        ctx.stop();
    }
}

/// Waits until `out`'s socket is writable (`get` finds it in the actor), then calls
/// `then`.
pub fn wait_writable<A>(
    out: &mut Socket,
    ctx: &mut Context<A>,
    get: fn(&mut A) -> &mut Socket,
    then: fn(&mut A, io::Result<()>, &mut Context<A>),
) where
    A: Actor<Context = Context<A>>,
{
    if out.waiting {
        return;
    }
    out.waiting = true;
    let stream = out.stream.clone();
    let fut = actix::fut::wrap_future::<_, A>(async move { stream.writable().await });
    ctx.spawn(fut.map(move |r, act, ctx| {
        get(act).waiting = false;
        then(act, r, ctx)
    }));
}
