//! `bench nats --pub` and `--fanout`: one producer writing one record per `PUB`, no
//! reply subject, pipelined in 256 KiB writes (as `bench pub --batch 1 --no-ack`
//! writes envelopes), then a `PING`: its `PONG` says the server has taken every record
//! before it. With `--fanout`, subscribers on the subject (connected and subscribed
//! before the first record) each read every record; each record carries its send time
//! in its first 8 bytes for the publish-to-read latency.

use std::io::Write;
use std::time::{Duration, Instant};

use super::conn::{connect, Reader, Writer};
use super::proto::Op;
use super::{NatsError, Options};
use crate::bench::histogram::Histogram;

fn now_ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// Writes `o.count` records of `o.size` bytes, each stamped with the time its write of
/// 256 KiB began, then a `PING`, and waits for its `PONG`.
fn produce(r: &mut Reader, w: &mut Writer, o: &Options, t0: Instant) -> Result<(), NatsError> {
    let head = format!("PUB {} {}\r\n", o.subject, o.size.max(8));
    let pad = vec![b'x'; o.size.saturating_sub(8)];
    let mut left = o.count;
    while left > 0 {
        w.out.clear();
        let ts = now_ns(t0).to_be_bytes();
        while left > 0 && w.out.len() < (256 << 10) {
            w.out.extend_from_slice(head.as_bytes());
            w.out.extend_from_slice(&ts);
            w.out.extend_from_slice(&pad);
            w.out.extend_from_slice(b"\r\n");
            left -= 1;
        }
        w.flush()?;
    }
    w.ping();
    w.flush()?;
    r.wait_pong(w)
}

fn mb(n: u64, size: usize, secs: f64) -> f64 {
    n as f64 * size as f64 / 1e6 / secs
}

/// `--pub`: the rate the server takes single-record publishes in.
pub fn publish(o: &Options, out: &mut impl Write) -> Result<(), NatsError> {
    let (mut r, mut w, _) = connect(o.server)?;
    let start = Instant::now();
    produce(&mut r, &mut w, o, start)?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    writeln!(
        out,
        "Pub: {} bytes x {} messages, one per PUB, no replies; taken in when the PONG to a PING after the last came\n\
         published  {} in {secs:.2} s: {:.0} msg/s, {:.1} MB/s",
        o.size.max(8),
        o.count,
        o.count,
        o.count as f64 / secs,
        mb(o.count, o.size.max(8), secs)
    )
    .map_err(NatsError::Output)
}

/// What one subscriber read.
struct Received {
    got: u64,
    /// When its last record was read, in ns since the bench's start.
    last_ns: u64,
    latency: Histogram,
    /// Why it stopped short of every record.
    failure: Option<String>,
}

/// Reads records until `want` have come, the server closes, or `idle` passes without one.
fn subscriber(mut r: Reader, mut w: Writer, want: u64, t0: Instant, idle: Duration) -> Received {
    let mut rec = Received {
        got: 0,
        last_ns: 0,
        latency: Histogram::default(),
        failure: None,
    };
    let result = (|| {
        r.set_idle_timeout(idle)?;
        loop {
            let now = now_ns(t0);
            let before = rec.got;
            while let Some(op) = r.buffered()? {
                match op {
                    Op::Msg(m) => {
                        rec.got += 1;
                        if let Some(ts) = m.payload.get(..8).and_then(|b| b.try_into().ok()) {
                            rec.latency
                                .record(now.saturating_sub(u64::from_be_bytes(ts)) / 1000);
                        }
                    }
                    Op::Ping => w.out.extend_from_slice(b"PONG\r\n"),
                    Op::Err(e) => return Err(NatsError::server(e)),
                    Op::Info(_) | Op::Pong | Op::Ok => {}
                }
            }
            if rec.got > before {
                rec.last_ns = now;
            }
            if rec.got >= want {
                return Ok(());
            }
            w.flush()?;
            r.fill()?;
        }
    })();
    if let Err(e) = result {
        rec.failure = Some(match e {
            NatsError::Idle => format!("nothing for {} ms", idle.as_millis()),
            other => other.to_string(),
        });
    }
    w.shutdown();
    rec
}

/// `--fanout`: one producer, `o.subscribers` subscribers each reading every record.
pub fn fanout(o: &Options, out: &mut impl Write) -> Result<(), NatsError> {
    let t0 = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..o.subscribers.max(1) {
        let (mut r, mut w, _) = connect(o.server)?;
        w.subscribe(&o.subject, 1);
        w.ping();
        w.flush()?;
        // The PONG says the subscription is in place before any record is sent.
        r.wait_pong(&mut w)?;
        let (count, idle) = (o.count, o.idle);
        threads.push(std::thread::spawn(move || {
            subscriber(r, w, count, t0, idle)
        }));
    }
    let (mut r, mut w, _) = connect(o.server)?;
    let start_ns = now_ns(t0);
    produce(&mut r, &mut w, o, t0)?;
    let pub_secs = ((now_ns(t0) - start_ns) as f64 / 1e9).max(1e-9);
    let mut received = Vec::new();
    for t in threads {
        received.push(
            t.join()
                .map_err(|_| NatsError::Bench("a subscriber thread panicked".into()))?,
        );
    }
    let size = o.size.max(8);
    let k = received.len();
    let total: u64 = received.iter().map(|s| s.got).sum();
    let end_ns = received.iter().map(|s| s.last_ns).max().unwrap_or(start_ns);
    let secs = ((end_ns.saturating_sub(start_ns)) as f64 / 1e9).max(1e-9);
    let rates: Vec<f64> = received
        .iter()
        .map(|s| s.got as f64 / (s.last_ns.saturating_sub(start_ns) as f64 / 1e9).max(1e-9))
        .collect();
    let mut latency = Histogram::default();
    for s in &received {
        latency.merge(&s.latency);
    }
    let lines = [
        format!(
            "Fanout: {size} bytes x {} messages, 1 producer (one record per PUB), {k} subscribers on one subject, each reading every record",
            o.count
        ),
        format!(
            "published  {} in {pub_secs:.2} s: {:.0} msg/s, {:.1} MB/s",
            o.count,
            o.count as f64 / pub_secs,
            mb(o.count, size, pub_secs)
        ),
        format!(
            "delivered  {total} of {} in {secs:.2} s: {:.0} msg/s in all, {:.1} MB/s; per subscriber {:.0} to {:.0} msg/s",
            o.count * k as u64,
            total as f64 / secs,
            mb(total, size, secs),
            rates.iter().copied().fold(f64::INFINITY, f64::min),
            rates.iter().copied().fold(0.0, f64::max),
        ),
        format!(
            "end-to-end latency  p50 {} us  p99 {} us  p999 {} us",
            latency.quantile(0.5),
            latency.quantile(0.99),
            latency.quantile(0.999)
        ),
    ];
    for line in lines {
        writeln!(out, "{line}").map_err(NatsError::Output)?;
    }
    let short: Vec<String> = received
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let why = s.failure.as_ref()?;
            Some(format!(
                "subscriber {i}: {} of {} records ({why})",
                s.got, o.count
            ))
        })
        .collect();
    for line in &short {
        writeln!(out, "{line}").map_err(NatsError::Output)?;
    }
    if short.is_empty() {
        Ok(())
    } else {
        Err(NatsError::Bench(format!(
            "{} of {k} subscribers missed records",
            short.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::super::{Mode, Options};

    /// A server that speaks just enough NATS for one publishing client: it sends its own
    /// `PING` before the handshake's `PONG`, and counts the `PUB`s and payload bytes
    /// until the second client `PING`. Returns (records, payload bytes, the client
    /// answered our PING).
    fn fake_server(l: TcpListener) -> std::io::Result<(u64, u64, bool)> {
        let (s, _) = l.accept()?;
        // A client that stops talking fails the test instead of hanging it: dropping
        // the socket ends the client's read too.
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        let mut w = s.try_clone()?;
        let mut r = BufReader::new(s);
        w.write_all(b"INFO {\"server_id\":\"fake\",\"version\":\"0.0.1\"}\r\n")?;
        let (mut records, mut bytes, mut ponged, mut pings) = (0, 0, false, 0);
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok((records, bytes, ponged));
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.first().copied() {
                Some("PUB") => {
                    let len: usize = f.last().and_then(|n| n.parse().ok()).unwrap_or(0);
                    let mut payload = vec![0; len + 2];
                    r.read_exact(&mut payload)?;
                    assert_eq!(&payload[len..], b"\r\n");
                    records += 1;
                    bytes += len as u64;
                }
                Some("PONG") => ponged = true,
                Some("PING") => {
                    pings += 1;
                    // Split in odd places: the client must put lines back together.
                    let answer: &[&[u8]] = if pings == 1 {
                        &[b"+O", b"K\r\nPI", b"NG\r\nPO", b"NG\r\n"]
                    } else {
                        &[b"PONG\r\n"]
                    };
                    for part in answer {
                        w.write_all(part)?;
                        w.flush()?;
                    }
                    if pings == 2 {
                        return Ok((records, bytes, ponged));
                    }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn publishes_every_record_and_answers_pings() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = l.local_addr().unwrap();
        let fake = std::thread::spawn(move || fake_server(l));
        let o = Options {
            mode: Mode::Pub,
            server,
            subject: "bench.x".into(),
            size: 100,
            count: 5000,
            inflight: 1,
            warmup: 0,
            subscribers: 1,
            idle: std::time::Duration::from_secs(5),
        };
        let mut out = Vec::new();
        super::publish(&o, &mut out).unwrap();
        let (records, bytes, ponged) = fake.join().unwrap().unwrap();
        assert_eq!((records, bytes, ponged), (5000, 500_000, true));
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("published  5000 in "), "{out}");
    }
}
