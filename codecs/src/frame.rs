//! [`FrameCodec`]: one tokio-util `Decoder`/`Encoder` for maze lines and dipper envelopes.
//!
//! On a port that accepts both (the broker port) the codec looks at the first byte of
//! the connection: an ASCII digit starts a maze line (`seq|…` or a user id), anything
//! else a dipper envelope. The choice holds for the rest of the connection.

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use tokio_util::codec::{Decoder, Encoder};

use crate::envelope::{Envelope, Labels};
use crate::error::{EnvelopeError, FrameError, FrameErrorKind, MazeError, MazeErrorKind};
use crate::limits::Limits;
use crate::maze::{leading_seq, parse_line, MazeEvent, MazeLine};
use crate::scan::{scan, Consume, Layout, Scan};

mod skip;
use skip::{start_skip, Skipping};
pub use skip::{Oversize, KEPT_LABEL_BYTES};

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Maze(MazeLine),
    Envelope(Envelope),
    /// A well-formed envelope over `max_frame_bytes`, skipped without being buffered;
    /// the stream is in step again after it, so a server may answer it and go on.
    Oversize(Oversize),
}

/// A short account of the frame for logs: a maze line as sent, an envelope's channel
/// and subject (labels and payload can be large, or secret).
impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Maze(line) => line.fmt(f),
            Frame::Envelope(e) => write!(f, "envelope {} {}", e.channel, e.subject),
            Frame::Oversize(o) => write!(f, "oversize envelope {} {}", o.channel, o.subject),
        }
    }
}

/// Which format a codec reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decide on the first byte, then stay.
    Detect,
    Maze,
    Envelope,
}

/// The unified frame codec. It counts every byte it consumes, so errors carry the
/// stream offset of the bad line.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    mode: Mode,
    limits: Limits,
    consumed: u64,
    /// Dropping input up to the next LF after a line over the limit.
    discarding: bool,
    skipping: Option<Box<Skipping>>,
}

impl FrameCodec {
    pub fn new(mode: Mode, limits: Limits) -> Self {
        FrameCodec {
            mode,
            limits,
            consumed: 0,
            discarding: false,
            skipping: None,
        }
    }

    /// A codec for a port that takes both formats.
    pub fn detect(limits: Limits) -> Self {
        Self::new(Mode::Detect, limits)
    }

    /// The mode in force: `Detect` until the first byte has been seen.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes consumed so far, good frames and bad.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    fn advance(&mut self, src: &mut BytesMut, n: usize) {
        src.advance(n);
        self.consumed += n as u64;
    }

    fn error(&self, at: usize, kind: impl Into<FrameErrorKind>) -> FrameError {
        FrameError {
            offset: self.consumed + at as u64,
            kind: kind.into(),
        }
    }

    fn decode_maze(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let window = &src[..src.len().min(self.limits.max_line_bytes)];
        match memchr::memchr(b'\n', window) {
            Some(i) => {
                let err_at = self.consumed;
                let mut line = src.split_to(i + 1);
                self.consumed += (i + 1) as u64;
                line.truncate(i);
                parse_line(line.freeze())
                    .map(|l| Some(Frame::Maze(l)))
                    .map_err(|e| FrameError {
                        offset: err_at,
                        kind: e.into(),
                    })
            }
            None if window.len() >= self.limits.max_line_bytes => {
                // The event's number is used up when it can be read, or the stream
                // would wait for it for ever.
                let e = self.error(
                    0,
                    MazeError {
                        seq: leading_seq(window),
                        kind: MazeErrorKind::LineTooLong {
                            max: self.limits.max_line_bytes,
                        },
                    },
                );
                // Only the long line goes: the lines after it may be in this read too.
                let max = self.limits.max_line_bytes;
                match memchr::memchr(b'\n', &src[max..]) {
                    Some(i) => self.advance(src, max + i + 1),
                    None => {
                        self.advance(src, src.len());
                        self.discarding = true;
                    }
                }
                Err(e)
            }
            None => Ok(None),
        }
    }

    fn decode_envelope(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match scan(src, &self.limits) {
            Ok(Scan::Incomplete { need }) => {
                src.reserve(need);
                Ok(None)
            }
            Ok(Scan::Complete(layout)) => {
                let offset = self.consumed;
                let frame = src.split_to(layout.len()).freeze();
                self.consumed += frame.len() as u64;
                build(frame, layout)
                    .map(|e| Some(Frame::Envelope(e)))
                    .map_err(|e| FrameError {
                        offset,
                        kind: e.into(),
                    })
            }
            Err(e) => {
                let err = self.error(e.at, e.error);
                match e.consume {
                    Consume::Through(n) => self.advance(src, n),
                    Consume::Line => {
                        self.advance(src, src.len());
                        self.discarding = true;
                    }
                    Consume::Skip(rest) => {
                        let through = rest.through;
                        let max = self.limits.max_frame_bytes;
                        let st = start_skip(src, *rest, self.consumed, max);
                        self.advance(src, through);
                        self.skipping = Some(Box::new(st));
                        return self.skip(src);
                    }
                }
                Err(err)
            }
        }
    }
}

fn build(frame: Bytes, layout: Layout) -> Result<Envelope, EnvelopeError> {
    let text = |r: std::ops::Range<usize>, field| {
        if let Some(s) = common_name(&frame[r.clone()]) {
            return Ok(ByteString::from_static(s));
        }
        ByteString::try_from(frame.slice(r)).map_err(|_| EnvelopeError::InvalidUtf8 { field })
    };
    let mut labels = Labels::with_capacity(layout.labels.len());
    for (name, value) in layout.labels {
        labels.insert(text(name, "label name")?, frame.slice(value));
    }
    Ok(Envelope {
        channel: text(layout.channel, "channel")?,
        subject: text(layout.subject, "subject")?,
        labels,
        payload: frame.slice(layout.payload),
    })
}

/// The channels, subjects and label names most frames carry, as static strings: no
/// UTF-8 pass and no reference to the read buffer for them (one frame per record
/// makes these a good part of a publish's cost).
fn common_name(b: &[u8]) -> Option<&'static str> {
    Some(match b {
        b"topic" => "topic",
        b"publish" => "publish",
        b"deliver" => "deliver",
        b"ack" => "ack",
        b"id" => "id",
        b"key" => "key",
        b"partition" => "partition",
        b"count" => "count",
        b"sub" => "sub",
        b"credit" => "credit",
        b"rpc" => "rpc",
        b"call" => "call",
        b"return" => "return",
        b"rpcID" => "rpcID",
        b"caller" => "caller",
        b"feature" => "feature",
        b"method" => "method",
        b"error" => "error",
        b"timeout" => "timeout",
        b"eventbus" => "eventbus",
        b"message" => "message",
        b"command" => "command",
        b"state" => "state",
        b"alive" => "alive",
        _ => return None,
    })
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if self.skipping.is_some() {
            return self.skip(src);
        }
        if self.discarding {
            match memchr::memchr(b'\n', src) {
                Some(i) => {
                    self.advance(src, i + 1);
                    self.discarding = false;
                }
                None => {
                    self.advance(src, src.len());
                    return Ok(None);
                }
            }
        }
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        if self.mode == Mode::Detect {
            self.mode = if first.is_ascii_digit() {
                Mode::Maze
            } else {
                Mode::Envelope
            };
        }
        match self.mode {
            Mode::Maze => self.decode_maze(src),
            _ => self.decode_envelope(src),
        }
    }

    /// At end of input a maze line may lack its LF (it is read as the last line);
    /// an unfinished envelope is an "unexpected EOF" error.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if let Some(st) = self.skipping.take() {
            let missing = st.missing();
            let err = self.error(
                0,
                EnvelopeError::Truncated {
                    missing: usize::try_from(missing).unwrap_or(usize::MAX),
                },
            );
            self.advance(src, src.len());
            return Err(err);
        }
        if src.is_empty() || self.discarding {
            self.advance(src, src.len());
            return Ok(None);
        }
        if self.mode == Mode::Maze {
            let err_at = self.consumed;
            let line = src.split().freeze();
            self.consumed += line.len() as u64;
            return parse_line(line)
                .map(|l| Some(Frame::Maze(l)))
                .map_err(|e| FrameError {
                    offset: err_at,
                    kind: e.into(),
                });
        }
        let missing = match scan(src, &self.limits) {
            Ok(Scan::Incomplete { need }) => need,
            _ => 1,
        };
        let err = self.error(0, EnvelopeError::Truncated { missing });
        self.advance(src, src.len());
        Err(err)
    }
}

impl Encoder<&Envelope> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: &Envelope, dst: &mut BytesMut) -> Result<(), FrameError> {
        item.encode(dst).map_err(|e| FrameError {
            offset: 0,
            kind: e.into(),
        })
    }
}

impl Encoder<Envelope> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Envelope, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&item, dst)
    }
}

impl Encoder<&MazeEvent> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: &MazeEvent, dst: &mut BytesMut) -> Result<(), FrameError> {
        item.encode(dst);
        Ok(())
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    /// A maze event is written as received plus CRLF, a user id as digits plus CRLF,
    /// an envelope in canonical form.
    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        match item {
            Frame::Maze(MazeLine::Event(e)) => self.encode(&e, dst),
            Frame::Maze(MazeLine::UserId(id)) => {
                crate::number::write_u64(dst, id);
                dst.extend_from_slice(b"\r\n");
                Ok(())
            }
            Frame::Envelope(e) => self.encode(&e, dst),
            // Its payload was never kept: there is nothing to write.
            Frame::Oversize(o) => Err(FrameError {
                offset: o.offset,
                kind: EnvelopeError::FrameTooLarge {
                    size: o.size,
                    max: o.max,
                }
                .into(),
            }),
        }
    }
}
