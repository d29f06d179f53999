//! The write side shared by every actor that owns a socket: a budgeted [`Outbox`],
//! `try_write` until the socket would block, then one `writable()` wait.

use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use actix::prelude::*;
use tokio::net::TcpStream;

use crate::outbox::{Full, Outbox};
use crate::stats::BrokerStats;

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
pub struct SocketOut {
    stream: Rc<TcpStream>,
    out: Outbox,
    stats: Arc<BrokerStats>,
    /// A `writable()` wait is in flight.
    pub waiting: bool,
    written: u64,
}

impl SocketOut {
    pub fn new(stream: Rc<TcpStream>, budget: usize, stats: Arc<BrokerStats>) -> Self {
        SocketOut {
            stream,
            out: Outbox::new(budget),
            stats,
            waiting: false,
            written: 0,
        }
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
        self.out.len()
    }

    pub fn is_idle(&self) -> bool {
        self.out.is_empty() && !self.waiting
    }

    /// Queues `bytes` under the budget.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Full> {
        self.out.push(bytes)?;
        self.stats
            .output_peak_bytes
            .fetch_max(self.out.peak() as u64, Relaxed);
        Ok(())
    }

    /// Writes `bytes` straight to the socket when nothing is queued before them, and
    /// queues only what the socket did not take: no copy on the common path.
    pub fn write_through(&mut self, bytes: &[u8]) -> Result<Flushed, Full> {
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
        if self.waiting {
            return Flushed::Blocked;
        }
        while !self.out.is_empty() {
            let stream = self.stream.clone();
            match stream.try_write(self.out.pending()) {
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

    /// Drops whatever is queued (the peer is being cut off).
    pub fn discard(&mut self) {
        self.out.clear();
    }

    /// Half-closes the socket so the peer reads everything sent before it sees EOF.
    pub fn shutdown_write(&self) {
        let _ = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
    }
}

/// Waits until `out`'s socket is writable (`get` finds it in the actor), then calls
/// `then`.
pub fn wait_writable<A>(
    out: &mut SocketOut,
    ctx: &mut Context<A>,
    get: fn(&mut A) -> &mut SocketOut,
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
