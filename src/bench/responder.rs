//! The other end of `bench rpc --serve`: the bench answers its own calls, as a named
//! service's instances (`svc:<name>`: `rpc register`) or as a remote driver
//! (`driver:<name>`: `driver hello`, then the driver lifecycle). Each instance is one
//! connection on one thread that decodes every call a read brought and writes all
//! their returns (the params echoed) in one write, as a busy responder would.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::BytesMut;
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio_util::codec::Decoder;

use crate::client::{ClientError, Target};

/// What the responders are once they are ready to answer.
#[derive(Debug)]
pub struct Responders {
    pub what: String,
    _threads: Vec<JoinHandle<()>>,
}

/// Starts `n` responders for `feature` and waits until the broker routes calls to
/// them: a service's instances are registered, a remote driver is alive.
pub fn start(to: &Target, feature: &str, n: usize) -> Result<Responders, ClientError> {
    let (kind, name) = feature.split_once(':').unwrap_or(("", ""));
    let hello = match kind {
        // The largest `max_inflight` the broker allows: the bench's own in-flight
        // count is the bound it measures.
        "svc" => Envelope::new("rpc", "register")
            .with_label("feature", feature.to_string())
            .with_label("max_inflight", "4096"),
        "driver" if n == 1 => Envelope::new("driver", "hello").with_label("name", name.to_string()),
        "driver" => {
            return Err(ClientError::Usage(
                "--serve with a driver: one remote driver (--serve 1)".into(),
            ))
        }
        _ => {
            return Err(ClientError::Usage(format!(
                "--serve answers calls to svc:<name> or driver:<name>, not `{feature}`"
            )))
        }
    };
    let (ready_tx, ready) = mpsc::channel();
    let mut threads = Vec::with_capacity(n);
    for _ in 0..n {
        let (r, mut w) = connect(to)?;
        let mut hello_bytes = BytesMut::new();
        hello
            .encode(&mut hello_bytes)
            .map_err(|e| ClientError::Frame(e.to_string()))?;
        w.write_all(&hello_bytes)?;
        w.flush()?;
        let ready_tx = ready_tx.clone();
        threads.push(std::thread::spawn(move || {
            let mut inst = Instance::new(r, w);
            let result = inst.answer_until_closed(&ready_tx);
            if let Err(e) = result {
                let _ = ready_tx.send(Err(e));
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..n {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ClientError::Closed),
        }
    }
    let what = match kind {
        "svc" => format!("{n} registered instance(s) of {feature}, each on its own connection"),
        _ => format!("{feature} as a remote driver (driver hello)"),
    };
    Ok(Responders {
        what,
        _threads: threads,
    })
}

fn connect(
    to: &Target,
) -> Result<(crate::client::tls::Reader, crate::client::tls::Writer), ClientError> {
    let (_, addr) = to.addr.connect_tcp()?;
    let (mut r, mut w) = to.connector.connect_split(addr)?;
    if let Some(l) = &to.login {
        crate::login::send_login(&mut w, l).map_err(ClientError::Login)?;
        crate::login::read_login_answer(&mut r).map_err(ClientError::Login)?;
    }
    Ok((r, w))
}

struct Instance {
    r: crate::client::tls::Reader,
    w: crate::client::tls::Writer,
    codec: FrameCodec,
    buf: BytesMut,
    chunk: Vec<u8>,
    out: BytesMut,
}

impl Instance {
    fn new(r: crate::client::tls::Reader, w: crate::client::tls::Writer) -> Instance {
        Instance {
            r,
            w,
            codec: FrameCodec::detect(Limits {
                max_frame_bytes: 64 << 20,
                ..Limits::default()
            }),
            buf: BytesMut::with_capacity(1 << 16),
            chunk: vec![0; 1 << 16],
            out: BytesMut::with_capacity(1 << 16),
        }
    }

    /// Answers until the broker closes the connection; tells `ready` once calls may
    /// come (after `rpc registered`, or after answering `command start`).
    fn answer_until_closed(
        &mut self,
        ready: &mpsc::Sender<Result<(), ClientError>>,
    ) -> Result<(), ClientError> {
        loop {
            let n = self.r.read(&mut self.chunk)?;
            if n == 0 {
                return Ok(());
            }
            self.buf.extend_from_slice(&self.chunk[..n]);
            while let Some(frame) = self
                .codec
                .decode(&mut self.buf)
                .map_err(|e| ClientError::Frame(e.to_string()))?
            {
                let Frame::Envelope(e) = frame else { continue };
                self.handle(e, ready)?;
            }
            if !self.out.is_empty() {
                self.w.write_all(&self.out)?;
                self.w.flush()?;
                self.out.clear();
            }
        }
    }

    fn handle(
        &mut self,
        e: Envelope,
        ready: &mpsc::Sender<Result<(), ClientError>>,
    ) -> Result<(), ClientError> {
        let label = |n: &str| e.labels.get_str(n).unwrap_or_default().to_string();
        if e.is("rpc", "call") {
            let id = label("rpcID");
            if id == "skip" {
                return Ok(());
            }
            let ret = Envelope::new("rpc", "return")
                .with_label("rpcID", id)
                .with_label("caller", label("caller"))
                .with_payload(e.payload.clone());
            return ret
                .encode(&mut self.out)
                .map_err(|e| ClientError::Frame(e.to_string()));
        }
        if e.is("rpc", "registered") {
            let _ = ready.send(Ok(()));
        } else if e.is("rpc", "error") || e.is("driver", "error") {
            return Err(ClientError::Broker(label("error")));
        } else if e.is("command", "start") || e.is("command", "ping") {
            let first = e.is("command", "start");
            Envelope::new("state", "alive")
                .encode(&mut self.out)
                .map_err(|e| ClientError::Frame(e.to_string()))?;
            if first {
                // Alive once the broker reads this; the bench's first (warm-up) calls
                // may race it and would be held while the driver starts, never lost.
                let _ = ready.send(Ok(()));
            }
        } else if e.is("command", "stop") {
            Envelope::new("state", "stopped")
                .encode(&mut self.out)
                .map_err(|e| ClientError::Frame(e.to_string()))?;
        }
        Ok(())
    }
}
