//! Serving a named service (`svc:<name>`) from a program: register it on the broker
//! port, answer each call with a handler, and register again after the broker
//! restarts.
//!
//! ```no_run
//! use switchyard::client::{serve, Request, ServiceOptions};
//! let to: std::net::SocketAddr = "127.0.0.1:7400".parse().unwrap();
//! let opts = ServiceOptions::new("svc:upper");
//! serve(to, &opts, true, |r: Request| Ok(r.params.to_ascii_uppercase()), |reg| {
//!     eprintln!("serving {} as {}", reg.feature, reg.id)
//! })
//! .unwrap();
//! ```
//!
//! Calls run at once, each on its own thread; the broker sends an instance at most
//! `max_inflight` calls at a time, which bounds the threads. Answers go out on one
//! writer thread, in the order they finish.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio_util::codec::Decoder;

use super::retry::with_reconnect;
use super::tls::{Reader, Writer};
use super::{ClientError, Target};

/// What `rpc register` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceOptions {
    /// `svc:<name>`.
    pub feature: String,
    /// Default (`None`): the service's name.
    pub group: Option<String>,
    /// Calls the broker sends this instance at once; default (`None`): the broker's, 256.
    pub max_inflight: Option<u32>,
    /// This instance's name in discovery; default (`None`): made up by the broker.
    pub id: Option<String>,
}

impl ServiceOptions {
    pub fn new(feature: impl Into<String>) -> ServiceOptions {
        ServiceOptions {
            feature: feature.into(),
            group: None,
            max_inflight: None,
            id: None,
        }
    }

    fn envelope(&self) -> Envelope {
        let mut e = Envelope::new("rpc", "register").with_label("feature", self.feature.clone());
        if let Some(g) = &self.group {
            e = e.with_label("group", g.clone());
        }
        if let Some(m) = self.max_inflight {
            e = e.with_label("max_inflight", m.to_string());
        }
        if let Some(id) = &self.id {
            e = e.with_label("id", id.clone());
        }
        e
    }
}

/// What the broker answered to `rpc register`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub feature: String,
    pub group: String,
    pub id: String,
    pub max_inflight: u32,
}

/// One call to the service.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The calling feature (`client:<id>`, `driver:<name>`, `-` for the broker).
    pub caller: String,
    pub params: Bytes,
}

/// A handler's answer: the result payload, or the text of the `error` label.
pub type Reply = Result<Vec<u8>, String>;

/// Registers `opts` and answers calls with `handler` until the connection ends;
/// `on_registered` is told each time the broker confirms the registration (again after
/// every reconnect). With `reconnect`, a lost connection is retried with back-off (see
/// [`super::retry`]) for ever; a refused registration always ends it
/// ([`ClientError::Broker`]).
pub fn serve<H>(
    to: impl Into<Target>,
    opts: &ServiceOptions,
    reconnect: bool,
    handler: H,
    mut on_registered: impl FnMut(&Registered),
) -> Result<(), ClientError>
where
    H: Fn(Request) -> Reply + Send + Sync + 'static,
{
    let to = to.into();
    let handler = Arc::new(handler);
    with_reconnect(reconnect, "serve", |backoff| {
        let (mut frames, writer) = connect(&to)?;
        let out = spawn_writer(writer);
        send(&out, opts.envelope())?;
        let reg = loop {
            let e = frames.recv()?;
            if e.is("rpc", "registered") {
                break Registered {
                    feature: label(&e, "feature"),
                    group: label(&e, "group"),
                    id: label(&e, "id"),
                    max_inflight: label(&e, "max_inflight").parse().unwrap_or(0),
                };
            }
            if e.is("rpc", "error") {
                return Err(ClientError::Broker(label(&e, "error")));
            }
        };
        backoff.reset();
        on_registered(&reg);
        loop {
            let e = frames.recv()?;
            if !e.is("rpc", "call") {
                continue;
            }
            let (out, handler) = (out.clone(), handler.clone());
            std::thread::spawn(move || answer(&e, &*handler, &out));
        }
    })
}

/// Runs one call and queues its return (none for `rpcID skip`).
fn answer<H: Fn(Request) -> Reply>(call: &Envelope, handler: &H, out: &mpsc::Sender<Envelope>) {
    let id = label(call, "rpcID");
    let caller = label(call, "caller");
    let reply = handler(Request {
        method: label(call, "method"),
        caller: caller.clone(),
        params: call.payload.clone(),
    });
    if id == "skip" {
        return;
    }
    let ret = Envelope::new("rpc", "return")
        .with_label("rpcID", id)
        .with_label("caller", caller);
    let ret = match reply {
        Ok(p) => ret.with_payload(p),
        Err(e) => ret.with_label("error", e),
    };
    // The connection may be gone; its calls are answered by the broker then.
    let _ = out.send(ret);
}

fn send(out: &mpsc::Sender<Envelope>, e: Envelope) -> Result<(), ClientError> {
    out.send(e).map_err(|_| ClientError::Closed)
}

fn label(e: &Envelope, name: &str) -> String {
    e.labels.get_str(name).unwrap_or_default().to_string()
}

/// The writer thread: one write per envelope, until every sender is gone or the
/// socket fails.
fn spawn_writer(mut w: Writer) -> mpsc::Sender<Envelope> {
    let (tx, rx) = mpsc::channel::<Envelope>();
    std::thread::spawn(move || {
        let mut b = BytesMut::new();
        for e in rx {
            b.clear();
            if e.encode(&mut b).is_err() || w.write_all(&b).and_then(|()| w.flush()).is_err() {
                return;
            }
        }
    });
    tx
}

/// A connection's halves (so answers go out while calls come in), logged in.
fn connect(to: &Target) -> Result<(Frames, Writer), ClientError> {
    let mut last = None;
    for addr in to.addr.resolve()? {
        match to.connector.connect_split(addr) {
            Ok((mut r, mut w)) => {
                if let Some(l) = &to.login {
                    crate::login::send_login(&mut w, l).map_err(ClientError::Login)?;
                    crate::login::read_login_answer(&mut r).map_err(ClientError::Login)?;
                }
                return Ok((Frames::new(r), w));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(ClientError::Closed))
}

/// Envelopes read from a connection's reading half.
struct Frames {
    r: Reader,
    codec: FrameCodec,
    buf: BytesMut,
}

impl Frames {
    fn new(r: Reader) -> Frames {
        Frames {
            r,
            codec: FrameCodec::detect(Limits {
                max_frame_bytes: 256 << 20,
                ..Limits::default()
            }),
            buf: BytesMut::new(),
        }
    }

    fn recv(&mut self) -> Result<Envelope, ClientError> {
        loop {
            match self
                .codec
                .decode(&mut self.buf)
                .map_err(|e| ClientError::Frame(e.to_string()))?
            {
                Some(Frame::Envelope(e)) => return Ok(e),
                Some(_) => continue,
                None => {}
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.r.read(&mut chunk)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
