//! A NATS client connection for the benches: plain TCP with `TCP_NODELAY`, a reader
//! with a 1 MiB buffer that hands out operations parsed in place, and a writer that
//! queues protocol lines and sends them in one write per batch.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use super::proto::{parse, Op, ProtoError};
use super::NatsError;

const READ_BUF: usize = 1 << 20;

/// What a client sends first: no `+OK` per operation, no header support (so the
/// server never sends `HMSG`).
pub const CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false,\"name\":\"switchyard-bench\",\"lang\":\"rust\",\"version\":\"0\",\"protocol\":1}\r\n";

pub struct Reader {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    fn new(s: TcpStream) -> Reader {
        Reader {
            s,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }

    /// The next operation already in the buffer; `None`: [`Reader::fill`] first.
    pub fn buffered(&mut self) -> Result<Option<Op<'_>>, ProtoError> {
        match parse(&self.buf[self.start..self.end])? {
            Some((op, n)) => {
                self.start += n;
                Ok(Some(op))
            }
            None => Ok(None),
        }
    }

    /// One read from the socket into the buffer (kept bytes moved to its front first,
    /// the buffer grown when one frame does not fit).
    pub fn fill(&mut self) -> Result<(), NatsError> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.buf.len() - self.end < READ_BUF / 4 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = match self.s.read(&mut self.buf[self.end..]) {
            Ok(0) => return Err(NatsError::Closed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(NatsError::Idle)
            }
            Err(e) => return Err(e.into()),
        };
        self.end += n;
        Ok(())
    }

    /// Reads until the server's `PONG`, answering its `PING`s; messages that come
    /// before it are dropped (callers wait for a `PONG` only when none are expected).
    pub fn wait_pong(&mut self, w: &mut Writer) -> Result<(), NatsError> {
        loop {
            while let Some(op) = self.buffered()? {
                match op {
                    Op::Pong => return Ok(()),
                    Op::Ping => w.pong_now()?,
                    Op::Err(e) => return Err(NatsError::server(e)),
                    Op::Info(_) | Op::Ok | Op::Msg(_) => {}
                }
            }
            self.fill()?;
        }
    }

    /// Reads give up with [`NatsError::Idle`] after `after` without a byte.
    pub fn set_idle_timeout(&self, after: Duration) -> Result<(), NatsError> {
        Ok(self.s.set_read_timeout(Some(after))?)
    }
}

pub struct Writer {
    s: TcpStream,
    /// Operations queued for the next [`Writer::flush`].
    pub out: Vec<u8>,
}

impl Writer {
    /// Queues `PUB <subject> [reply] <len>` and the payload.
    pub fn publish(&mut self, subject: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
        let mut len = itoa::Buffer::new();
        self.out.extend_from_slice(b"PUB ");
        self.out.extend_from_slice(subject);
        if let Some(r) = reply {
            self.out.push(b' ');
            self.out.extend_from_slice(r);
        }
        self.out.push(b' ');
        self.out
            .extend_from_slice(len.format(payload.len()).as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(payload);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Queues `SUB <subject> <sid>`.
    pub fn subscribe(&mut self, subject: &str, sid: u32) {
        self.out
            .extend_from_slice(format!("SUB {subject} {sid}\r\n").as_bytes());
    }

    pub fn ping(&mut self) {
        self.out.extend_from_slice(b"PING\r\n");
    }

    /// Answers a server `PING` at once (it closes connections that miss two).
    pub fn pong_now(&mut self) -> Result<(), NatsError> {
        self.out.extend_from_slice(b"PONG\r\n");
        self.flush()
    }

    /// Writes everything queued.
    pub fn flush(&mut self) -> Result<(), NatsError> {
        if !self.out.is_empty() {
            self.s.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Closes the connection both ways: a thread blocked reading it sees the end.
    pub fn shutdown(&self) {
        let _ = self.s.shutdown(Shutdown::Both);
    }

    /// Another handle on the socket, to shut it down from another thread.
    pub fn handle(&self) -> Result<Writer, NatsError> {
        Ok(Writer {
            s: self.s.try_clone()?,
            out: Vec::new(),
        })
    }
}

/// Connects, reads the server's `INFO`, sends `CONNECT` and a `PING`, and waits for its
/// `PONG` (so a refused `CONNECT` shows here). Returns the `INFO` JSON too.
pub fn connect(addr: SocketAddr) -> Result<(Reader, Writer, String), NatsError> {
    let s = TcpStream::connect(addr).map_err(|e| NatsError::Connect(addr, e))?;
    s.set_nodelay(true)?;
    let mut r = Reader::new(s.try_clone()?);
    let mut w = Writer {
        s,
        out: Vec::with_capacity(512 << 10),
    };
    let info = loop {
        if let Some(op) = r.buffered()? {
            match op {
                Op::Info(json) => break String::from_utf8_lossy(json).into_owned(),
                Op::Err(e) => return Err(NatsError::server(e)),
                other => return Err(NatsError::Handshake(format!("{other:?} before INFO"))),
            }
        }
        r.fill()?;
    };
    w.out.extend_from_slice(CONNECT);
    w.ping();
    w.flush()?;
    r.wait_pong(&mut w)?;
    Ok((r, w, info))
}
