//! A broker-port TLS session driven sans-IO from the connection's own readiness loop:
//! on readable, records are read straight from the socket (`read_tls`), decrypted
//! (`process_new_packets`) and the plaintext appended to the connection's read buffer;
//! on flush, queued plaintext is sealed into records kept in [`TlsSession::pending`],
//! which the socket writes like any other output. Handshake messages take the same
//! way out, so a handshake progresses even when the application has nothing to say.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use rustls::{ServerConfig, ServerConnection};
use tokio::net::TcpStream;

use super::identity;
use super::stats::{FailReason, TlsFailure, TlsPort};
use crate::outbox::Outbox;
use crate::stats::BrokerStats;

/// The most rustls itself buffers (plaintext before the handshake ends, records not
/// yet handed to [`TlsSession::pending`]): what is sealed is moved out at once, so
/// its own buffer stays within this and the output budget counts the rest.
pub const RUSTLS_BUFFER: usize = 64 << 10;

/// Plaintext moved out of rustls per step (a TLS record holds at most 16 KiB).
const PLAIN_STEP: usize = 16 << 10;

/// Capacity an empty record buffer keeps for the next burst.
const KEEP_CAPACITY: usize = 64 << 10;

/// The content type of a TLS handshake record: every TLS client's first byte.
const HANDSHAKE_RECORD: u8 = 0x16;

#[derive(Debug)]
pub struct TlsSession {
    conn: ServerConnection,
    /// Sealed records waiting for the socket.
    sealed: BytesMut,
    /// The first byte from the peer has been checked.
    first_checked: bool,
    established: bool,
    /// Set when the handshake has just finished; taken by the connection.
    news: Option<Option<String>>,
}

/// What reading plaintext out of rustls found.
enum Plain {
    Some,
    /// The peer closed (close_notify, or the TCP stream ended).
    Closed,
}

impl TlsSession {
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, rustls::Error> {
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(RUSTLS_BUFFER));
        Ok(TlsSession {
            conn,
            sealed: BytesMut::new(),
            first_checked: false,
            established: false,
            news: None,
        })
    }

    /// Sealed bytes waiting for the socket.
    pub fn pending(&self) -> &[u8] {
        &self.sealed
    }

    /// Marks `n` sealed bytes as written.
    pub fn consume(&mut self, n: usize) {
        self.sealed.advance(n);
        if self.sealed.is_empty() && self.sealed.capacity() > KEEP_CAPACITY {
            self.sealed = BytesMut::new();
        }
    }

    pub fn discard(&mut self) {
        self.sealed.clear();
    }

    /// The handshake's outcome once it has just finished: the verified client
    /// certificate's name, if any. Returned once.
    pub fn take_established(&mut self) -> Option<Option<String>> {
        self.news.take()
    }

    /// Reads what the socket holds and appends the plaintext to `buf` (at least about
    /// `chunk` bytes when that much is there). `Ok(0)`: the peer closed. `WouldBlock`:
    /// nothing yet (handshake records may have been read and answers sealed).
    pub fn read(
        &mut self,
        stream: &TcpStream,
        buf: &mut BytesMut,
        chunk: usize,
        stats: &BrokerStats,
    ) -> io::Result<usize> {
        let start = buf.len();
        let mut closed = false;
        loop {
            if let Plain::Closed = self.drain_plain(buf)? {
                closed = true;
                break;
            }
            if buf.len() - start >= chunk {
                break;
            }
            let mut raw = Raw {
                stream,
                first_checked: &mut self.first_checked,
            };
            match self.conn.read_tls(&mut raw) {
                Ok(0) => {
                    if !self.established {
                        return Err(self.fail(
                            FailReason::Eof,
                            "closed during the handshake".into(),
                            stats,
                        ));
                    }
                    self.process(stats)?;
                    self.drain_plain(buf)?;
                    closed = true;
                    break;
                }
                Ok(n) => {
                    BrokerStats::add(&stats.bytes_in, n as u64);
                    self.process(stats)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    return Err(match TlsFailure::of(&e) {
                        Some(f) => {
                            let (reason, detail) = (f.reason, f.detail.clone());
                            self.fail(reason, detail, stats)
                        }
                        None => e,
                    })
                }
            }
        }
        self.drain_records();
        match buf.len() - start {
            0 if closed => Ok(0),
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    /// Decrypts what was read; notes the end of the handshake.
    fn process(&mut self, stats: &BrokerStats) -> io::Result<()> {
        if let Err(e) = self.conn.process_new_packets() {
            // The alert rustls queued for the peer goes out with what is sealed.
            self.drain_records();
            return Err(self.fail(FailReason::of(&e), e.to_string(), stats));
        }
        if !self.established && !self.conn.is_handshaking() {
            self.established = true;
            stats.tls.handshake_done(TlsPort::Broker);
            let name = self
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| identity::of_certificate(c));
            self.news = Some(name);
        }
        Ok(())
    }

    fn fail(&self, reason: FailReason, detail: String, stats: &BrokerStats) -> io::Error {
        let handshake = !self.established;
        if handshake {
            stats.tls.handshake_failed(TlsPort::Broker, reason);
        }
        TlsFailure {
            reason,
            handshake,
            detail,
        }
        .into_io()
    }

    /// Moves decrypted bytes into `buf`.
    fn drain_plain(&mut self, buf: &mut BytesMut) -> io::Result<Plain> {
        loop {
            let start = buf.len();
            // Zeroing one step costs far less than decrypting it.
            buf.resize(start + PLAIN_STEP, 0);
            let r = self.conn.reader().read(&mut buf[start..]);
            buf.truncate(start + *r.as_ref().unwrap_or(&0));
            match r {
                Ok(0) => return Ok(Plain::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Plain::Some),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Plain::Closed),
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves every record rustls has ready into `sealed`.
    fn drain_records(&mut self) {
        let mut w = (&mut self.sealed).writer();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut w) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Seals what `out` holds into records, as far as rustls takes it (before the
    /// handshake has finished it holds at most [`RUSTLS_BUFFER`]; the rest waits).
    pub fn seal(&mut self, out: &mut Outbox) -> io::Result<()> {
        while !out.is_empty() {
            let n = self.conn.writer().write(out.pending())?;
            if n == 0 {
                break;
            }
            out.consume(n);
            self.drain_records();
        }
        self.drain_records();
        Ok(())
    }

    /// Seals a close_notify alert; the socket writes it before it half-closes.
    pub fn close_notify(&mut self) {
        self.conn.send_close_notify();
        self.drain_records();
    }
}

/// The socket as rustls reads it: non-blocking reads, and the first byte checked, so
/// a plaintext client is told apart from a broken TLS one.
struct Raw<'a> {
    stream: &'a TcpStream,
    first_checked: &'a mut bool,
}

impl Read for Raw<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.try_read(b)?;
        if n > 0 && !*self.first_checked {
            *self.first_checked = true;
            if b[0] != HANDSHAKE_RECORD {
                return Err(TlsFailure {
                    reason: FailReason::Plaintext,
                    handshake: true,
                    detail: format!(
                        "first byte 0x{:02x} is not a TLS handshake record: a plaintext client on a TLS port",
                        b[0]
                    ),
                }
                .into_io());
            }
        }
        Ok(n)
    }
}
