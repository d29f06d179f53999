//! A broker-port TLS session driven sans-IO from the connection's own readiness loop:
//! on readable, records are read straight from the socket (`read_tls`), decrypted
//! (`process_new_packets`) and the plaintext appended to the connection's read buffer;
//! on flush, queued plaintext is sealed into records kept in [`TlsSession::pending`],
//! which the socket writes like any other output. Handshake messages take the same
//! way out, so a handshake progresses even when the application has nothing to say.

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
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

/// Bytes read from the socket per system call, at most and at least (a TLS record
/// is up to 16 KiB of plaintext and some overhead).
const RAW_READ: usize = 64 << 10;
const MIN_RAW_READ: usize = 17 << 10;

thread_local! {
    /// Where socket reads land before rustls takes them: one per thread (the broker's
    /// connections share an arbiter), not one per connection.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

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

    /// Frees the record buffer when it holds nothing (the connection has gone quiet).
    pub fn release_spare(&mut self) {
        if self.sealed.is_empty() {
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
    ///
    /// The socket is read in large steps into a scratch buffer shared by the thread's
    /// sessions and fed to rustls from there: `read_tls` on the socket itself would
    /// make one system call per 4 KiB.
    pub fn read(
        &mut self,
        stream: &TcpStream,
        buf: &mut BytesMut,
        chunk: usize,
        stats: &BrokerStats,
    ) -> io::Result<usize> {
        let start = buf.len();
        let mut closed = matches!(self.drain_plain(buf)?, Plain::Closed);
        while !closed && buf.len() - start < chunk {
            let step = SCRATCH.with(|cell| -> io::Result<Option<bool>> {
                let mut scratch = cell.borrow_mut();
                if scratch.len() < RAW_READ {
                    scratch.resize(RAW_READ, 0);
                }
                // About what the caller asked for (it charges its read buffer to the
                // memory budget), but at least one whole record.
                let want = chunk.clamp(MIN_RAW_READ, RAW_READ);
                let n = match stream.try_read(&mut scratch[..want]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(e),
                };
                BrokerStats::add(&stats.bytes_in, n as u64);
                match n {
                    0 => self.peer_eof(buf, stats).map(Some),
                    n => self.feed(&scratch[..n], buf, stats).map(Some),
                }
            });
            match step {
                Ok(None) => break,
                Ok(Some(c)) => closed = c,
                Err(e) => {
                    self.drain_records();
                    return Err(e);
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

    /// Hands `raw` bytes from the socket to rustls and takes out the plaintext; true
    /// when the peer closed the session.
    fn feed(
        &mut self,
        mut raw: &[u8],
        buf: &mut BytesMut,
        stats: &BrokerStats,
    ) -> io::Result<bool> {
        if !self.first_checked {
            self.first_checked = true;
            if raw[0] != HANDSHAKE_RECORD {
                let detail = format!(
                    "first byte 0x{:02x} is not a TLS handshake record: a plaintext client on a TLS port",
                    raw[0]
                );
                return Err(self.fail(FailReason::Plaintext, detail, stats));
            }
        }
        // Never with an empty slice: rustls takes a read of 0 for the end of the stream.
        while !raw.is_empty() {
            self.conn.read_tls(&mut raw)?;
            self.process(stats)?;
            if let Plain::Closed = self.drain_plain(buf)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The TCP stream ended: before the handshake finished, a failure; after it, the
    /// end of the session (with or without close_notify).
    fn peer_eof(&mut self, buf: &mut BytesMut, stats: &BrokerStats) -> io::Result<bool> {
        if !self.established {
            return Err(self.fail(FailReason::Eof, "closed during the handshake".into(), stats));
        }
        self.conn.read_tls(&mut &[][..])?;
        self.process(stats)?;
        self.drain_plain(buf)?;
        Ok(true)
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

    /// Moves decrypted bytes into `buf` (one copy, straight from rustls's buffer).
    fn drain_plain(&mut self, buf: &mut BytesMut) -> io::Result<Plain> {
        loop {
            let mut reader = self.conn.reader();
            match reader.fill_buf() {
                // An empty chunk without an error: the peer sent close_notify.
                Ok([]) => return Ok(Plain::Closed),
                Ok(chunk) => {
                    let n = chunk.len();
                    buf.extend_from_slice(chunk);
                    reader.consume(n);
                }
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
            let n = self.conn.writer().write(out.front())?;
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
