//! `bench nats --rpc`: request/reply through the server, two hops each way as with a
//! registered switchyard service. A responder connection, on a thread of its own,
//! subscribes to the subject and publishes each request's payload back to its reply
//! subject; the caller subscribes once to `_INBOX.<token>.*` and gives every request a
//! reply subject of its own there. One request at a time, then `inflight` outstanding,
//! the requests that one read of replies frees written back in one write (as `bench
//! rpc` does). Then the server's own `PING`/`PONG`: one hop, as switchyard's `broker
//! ping`.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::time::Instant;

use super::conn::{connect, Reader, Writer};
use super::proto::Op;
use super::{NatsError, Options};
use crate::bench::histogram::Histogram;
use crate::bench::rpc::RunReport;

/// Answers every request on `subject` until its connection is shut down.
fn respond(mut r: Reader, mut w: Writer) -> Result<(), NatsError> {
    loop {
        while let Some(op) = r.buffered()? {
            match op {
                Op::Msg(m) => {
                    if let Some(reply) = m.reply {
                        w.publish(reply, None, m.payload);
                    }
                }
                Op::Ping => w.out.extend_from_slice(b"PONG\r\n"),
                Op::Err(e) => return Err(NatsError::server(e)),
                Op::Info(_) | Op::Pong | Op::Ok => {}
            }
        }
        w.flush()?;
        r.fill()?;
    }
}

struct Caller {
    r: Reader,
    w: Writer,
    subject: Vec<u8>,
    /// `_INBOX.<token>.`: a request's reply subject is this and its id.
    inbox: Vec<u8>,
    payload: Vec<u8>,
    reply: Vec<u8>,
    next_id: u64,
}

impl Caller {
    /// Queues a request with a new id; returns the id.
    fn request(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.reply.clear();
        self.reply.extend_from_slice(&self.inbox);
        self.reply
            .extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        self.w
            .publish(&self.subject, Some(&self.reply), &self.payload);
        id
    }

    /// The ids of the replies of the next read (at least one).
    fn replies(&mut self, got: &mut Vec<u64>) -> Result<(), NatsError> {
        got.clear();
        loop {
            while let Some(op) = self.r.buffered()? {
                match op {
                    Op::Msg(m) => {
                        let id = m
                            .subject
                            .strip_prefix(self.inbox.as_slice())
                            .and_then(|t| std::str::from_utf8(t).ok().and_then(|t| t.parse().ok()));
                        if let Some(id) = id {
                            got.push(id);
                        }
                    }
                    Op::Ping => self.w.out.extend_from_slice(b"PONG\r\n"),
                    Op::Err(e) => return Err(NatsError::server(e)),
                    Op::Info(_) | Op::Pong | Op::Ok => {}
                }
            }
            if !got.is_empty() {
                return Ok(());
            }
            self.w.flush()?;
            self.r.fill()?;
        }
    }

    fn run(&mut self, count: u64, inflight: u64) -> Result<RunReport, NatsError> {
        let inflight = inflight.max(1);
        let mut latency = Histogram::default();
        let mut sent_at: HashMap<u64, Instant> = HashMap::with_capacity(inflight as usize * 2);
        let (mut sent, mut done) = (0u64, 0u64);
        let mut got = Vec::new();
        let start = Instant::now();
        while done < count {
            while sent < count && sent - done < inflight {
                let id = self.request();
                sent_at.insert(id, Instant::now());
                sent += 1;
            }
            self.w.flush()?;
            self.replies(&mut got)?;
            let now = Instant::now();
            for id in got.drain(..) {
                if let Some(t) = sent_at.remove(&id) {
                    latency.record(now.duration_since(t).as_micros() as u64);
                    done += 1;
                }
            }
        }
        Ok(RunReport::all_ok(inflight, count, start, latency))
    }

    /// `count` server `PING`s with up to `inflight` outstanding; `PONG`s come in order.
    fn pings(&mut self, count: u64, inflight: u64) -> Result<RunReport, NatsError> {
        let inflight = inflight.max(1);
        let mut latency = Histogram::default();
        let mut sent_at: VecDeque<Instant> = VecDeque::with_capacity(inflight as usize);
        let (mut sent, mut done) = (0u64, 0u64);
        let start = Instant::now();
        while done < count {
            while sent < count && sent - done < inflight {
                self.w.ping();
                sent_at.push_back(Instant::now());
                sent += 1;
            }
            self.w.flush()?;
            let mut pongs = 0;
            while pongs == 0 {
                while let Some(op) = self.r.buffered()? {
                    match op {
                        Op::Pong => pongs += 1,
                        Op::Ping => self.w.out.extend_from_slice(b"PONG\r\n"),
                        Op::Err(e) => return Err(NatsError::server(e)),
                        Op::Info(_) | Op::Msg(_) | Op::Ok => {}
                    }
                }
                if pongs == 0 {
                    self.w.flush()?;
                    self.r.fill()?;
                }
            }
            let now = Instant::now();
            for _ in 0..pongs {
                if let Some(t) = sent_at.pop_front() {
                    latency.record(now.duration_since(t).as_micros() as u64);
                    done += 1;
                }
            }
        }
        Ok(RunReport::all_ok(inflight, count, start, latency))
    }
}

/// Runs both cases through a responder, then both against the server's `PING`.
pub fn run(o: &Options, out: &mut impl Write) -> Result<(), NatsError> {
    let (mut rr, mut rw, _) = connect(o.server)?;
    rw.subscribe(&o.subject, 1);
    rw.ping();
    rw.flush()?;
    rr.wait_pong(&mut rw)?;
    let responder_socket = rw.handle()?;
    let responder = std::thread::spawn(move || respond(rr, rw));

    let (r, mut w, _) = connect(o.server)?;
    let token = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let inbox = format!("_INBOX.{token}.");
    w.subscribe(&format!("{inbox}*"), 1);
    let mut c = Caller {
        r,
        w,
        subject: o.subject.clone().into_bytes(),
        inbox: inbox.into_bytes(),
        payload: vec![b'x'; o.size],
        reply: Vec::new(),
        next_id: 0,
    };
    c.w.ping();
    c.w.flush()?;
    c.r.wait_pong(&mut c.w)?;
    // A lost reply would leave the caller waiting for ever.
    c.r.set_idle_timeout(o.idle)?;

    let mut cases = vec![1];
    if o.inflight > 1 {
        cases.push(o.inflight);
    }
    let result = (|| {
        let say = |out: &mut dyn Write, line: String| writeln!(out, "{line}");
        say(
            out,
            format!(
                "request/reply {} via a responder (two hops each way): {} B payload, {} calls per run",
                o.subject, o.size, o.count
            ),
        )
        .map_err(NatsError::Output)?;
        for &inflight in &cases {
            if o.warmup > 0 {
                c.run(o.warmup, inflight)?;
            }
            let report = c.run(o.count, inflight)?;
            say(out, report.to_string()).map_err(NatsError::Output)?;
        }
        say(
            out,
            format!(
                "server PING/PONG (one hop, as broker ping): {} calls per run",
                o.count
            ),
        )
        .map_err(NatsError::Output)?;
        for &inflight in &cases {
            if o.warmup > 0 {
                c.pings(o.warmup, inflight)?;
            }
            let report = c.pings(o.count, inflight)?;
            say(out, report.to_string()).map_err(NatsError::Output)?;
        }
        Ok(())
    })();
    responder_socket.shutdown();
    // The shutdown ends the responder's read: that is how it stops, so what it says
    // matters only when the caller failed (it may be why).
    match (result, responder.join()) {
        (Ok(()), Ok(_)) => Ok(()),
        (Err(e), Ok(Ok(()) | Err(NatsError::Closed))) => Err(e),
        (Err(e), Ok(Err(why))) => Err(NatsError::Bench(format!("{e}; the responder: {why}"))),
        (_, Err(_)) => Err(NatsError::Bench("the responder thread panicked".into())),
    }
}
