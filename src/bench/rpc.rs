//! `switchyard bench rpc`: the RPC round trip against a running broker. One caller
//! makes one call at a time (the latency of a lone call), then keeps `inflight` calls
//! outstanding on the same connection (the rate of a busy caller). The target is any
//! feature: `broker` (answered by the broker itself), `driver:<name>`, or a service.

use std::io::{Read, Write};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio_util::codec::Decoder;

use super::histogram::Histogram;
use crate::client::{ClientError, Target};

#[derive(Debug, Clone)]
pub struct Options {
    pub feature: String,
    pub method: String,
    /// Bytes of params per call.
    pub size: usize,
    /// Calls of each run.
    pub count: u64,
    /// Calls outstanding in the second run; 0 or 1 skips it.
    pub inflight: u64,
    /// Calls made and not measured before each run: connections and caches warm up.
    pub warmup: u64,
    /// Responders the bench runs itself (see [`super::responder`]); 0: none.
    pub serve: usize,
}

/// What one run measured.
#[derive(Debug)]
pub struct RunReport {
    pub inflight: u64,
    pub calls: u64,
    pub errors: u64,
    pub secs: f64,
    pub latency: Histogram,
}

impl RunReport {
    /// A run of `calls` that all succeeded, started at `start`.
    pub fn all_ok(
        inflight: u64,
        calls: u64,
        start: std::time::Instant,
        latency: Histogram,
    ) -> Self {
        RunReport {
            inflight,
            calls,
            errors: 0,
            secs: start.elapsed().as_secs_f64(),
            latency,
        }
    }
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.inflight <= 1 {
            "one call at a time".to_string()
        } else {
            format!("{} in flight", self.inflight)
        };
        write!(
            f,
            "{what:>18}: {} calls in {:.2} s: {:.0} calls/s, p50 {} us  p99 {} us  p999 {} us  max {} us",
            self.calls,
            self.secs,
            self.calls as f64 / self.secs.max(1e-9),
            self.latency.quantile(0.5),
            self.latency.quantile(0.99),
            self.latency.quantile(0.999),
            self.latency.max(),
        )?;
        if self.errors > 0 {
            write!(f, " ({} answered with an error)", self.errors)?;
        }
        Ok(())
    }
}

/// One connection making calls: calls are written whole, returns read in bulk.
struct Caller {
    r: crate::client::tls::Reader,
    w: crate::client::tls::Writer,
    codec: FrameCodec,
    buf: BytesMut,
    chunk: Vec<u8>,
    /// The call's header line and `rpcID <len>` prefix (`rpcID` is written first), and
    /// the labels and payload after the id: every call is the same but for its id.
    head: Vec<u8>,
    tail: Vec<u8>,
    params: Bytes,
    next_id: u64,
}

impl Caller {
    fn connect(to: &Target, o: &Options) -> Result<Caller, ClientError> {
        let (_, addr) = to.addr.connect_tcp()?;
        let (mut r, mut w) = to.connector.connect_split(addr)?;
        if let Some(l) = &to.login {
            crate::login::send_login(&mut w, l).map_err(ClientError::Login)?;
            crate::login::read_login_answer(&mut r).map_err(ClientError::Login)?;
        }
        Ok(Caller {
            r,
            w,
            codec: FrameCodec::detect(Limits {
                max_frame_bytes: 64 << 20,
                ..Limits::default()
            }),
            buf: BytesMut::with_capacity(1 << 16),
            chunk: vec![0; 1 << 16],
            head: Vec::new(),
            tail: Vec::new(),
            params: Bytes::from(vec![b'x'; o.size]),
            next_id: 0,
        }
        .with_template(o))
    }

    fn with_template(mut self, o: &Options) -> Caller {
        let env = Envelope::new("rpc", "call")
            .with_label("feature", o.feature.clone())
            .with_label("method", o.method.clone())
            .with_label("caller", "-")
            .with_payload(self.params.clone());
        let mut b = BytesMut::new();
        let _ = env.encode(&mut b);
        let lf = b.iter().position(|&c| c == b'\n').map_or(0, |i| i + 1);
        self.head = format!("rpc call 4 {}\nrpcID ", self.params.len()).into_bytes();
        self.tail = b[lf..].to_vec();
        self
    }

    /// Appends a call with a new rpcID to `out`; returns its id.
    fn call(&mut self, out: &mut Vec<u8>) -> u64 {
        use std::io::Write as _;
        let id = self.next_id;
        self.next_id += 1;
        out.extend_from_slice(&self.head);
        let digits = id.checked_ilog10().unwrap_or(0) + 1;
        let _ = write!(out, "{digits}\n{id}");
        out.extend_from_slice(&self.tail);
        id
    }

    /// The returns of the next read: `(rpcID, error)`.
    fn returns(&mut self, got: &mut Vec<(u64, Option<String>)>) -> Result<(), ClientError> {
        got.clear();
        loop {
            match self
                .codec
                .decode(&mut self.buf)
                .map_err(|e| ClientError::Frame(e.to_string()))?
            {
                Some(Frame::Envelope(e)) if e.is("rpc", "return") => {
                    let id = e.labels.get_str("rpcID").and_then(|v| v.parse().ok());
                    if let Some(id) = id {
                        got.push((id, e.labels.get_str("error").map(str::to_string)));
                    }
                }
                Some(Frame::Envelope(e)) if e.is("topic", "error") || e.is("state", "refused") => {
                    return Err(ClientError::Broker(
                        e.labels.get_str("error").unwrap_or("refused").to_string(),
                    ))
                }
                Some(_) => {}
                None if !got.is_empty() => return Ok(()),
                None => {
                    let n = self.r.read(&mut self.chunk)?;
                    if n == 0 {
                        return Err(ClientError::Closed);
                    }
                    self.buf.extend_from_slice(&self.chunk[..n]);
                }
            }
        }
    }

    /// Makes `count` calls with up to `inflight` outstanding, the calls that a read
    /// frees written back in one write.
    fn run(&mut self, count: u64, inflight: u64) -> Result<RunReport, ClientError> {
        let inflight = inflight.max(1);
        let mut latency = Histogram::default();
        let mut sent_at: std::collections::HashMap<u64, Instant> =
            std::collections::HashMap::with_capacity(inflight as usize * 2);
        let (mut sent, mut done, mut errors) = (0u64, 0u64, 0u64);
        let mut out = Vec::with_capacity(64 << 10);
        let mut got = Vec::new();
        let start = Instant::now();
        while done < count {
            out.clear();
            while sent < count && sent - done < inflight {
                let id = self.call(&mut out);
                sent_at.insert(id, Instant::now());
                sent += 1;
            }
            if !out.is_empty() {
                self.w.write_all(&out)?;
                self.w.flush()?;
            }
            self.returns(&mut got)?;
            let now = Instant::now();
            for (id, error) in got.drain(..) {
                let Some(t) = sent_at.remove(&id) else {
                    continue;
                };
                latency.record(now.duration_since(t).as_micros() as u64);
                done += 1;
                if let Some(e) = error {
                    if errors == 0 && done == 1 {
                        // The first call failed: every other one will too.
                        return Err(ClientError::Broker(e));
                    }
                    errors += 1;
                }
            }
        }
        Ok(RunReport {
            inflight,
            calls: count,
            errors,
            secs: start.elapsed().as_secs_f64(),
            latency,
        })
    }
}

/// One run on a new connection, after its warmup: `o.inflight` calls outstanding.
pub fn one_run(to: &Target, o: &Options) -> Result<RunReport, ClientError> {
    let mut c = Caller::connect(to, o)?;
    if o.warmup > 0 {
        c.run(o.warmup, o.inflight)?;
    }
    c.run(o.count, o.inflight)
}

/// Runs both cases and prints them.
pub fn run(to: &Target, o: &Options, out: &mut impl Write) -> Result<(), ClientError> {
    let responders = match o.serve {
        0 => None,
        n => Some(super::responder::start(to, &o.feature, n)?),
    };
    let mut c = Caller::connect(to, o)?;
    writeln!(
        out,
        "rpc {} {}: {} B params, {} calls per run",
        o.feature, o.method, o.size, o.count
    )
    .map_err(ClientError::Output)?;
    if let Some(r) = &responders {
        writeln!(out, "answered by the bench: {}", r.what).map_err(ClientError::Output)?;
    }
    let mut cases = vec![1];
    if o.inflight > 1 {
        cases.push(o.inflight);
    }
    for inflight in cases {
        if o.warmup > 0 {
            c.run(o.warmup, inflight)?;
        }
        let report = c.run(o.count, inflight)?;
        writeln!(out, "{report}").map_err(ClientError::Output)?;
    }
    Ok(())
}
