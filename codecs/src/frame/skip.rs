//! Oversize envelopes: a frame whose header announces more than `max_frame_bytes` is
//! skipped as its bytes arrive, never buffered, and reported as one
//! [`Frame::Oversize`](super::Frame::Oversize) once it has all gone by, so the stream
//! stays in step and a server can answer it with an error instead of hanging up.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use super::{Frame, FrameCodec};
use crate::envelope::Labels;
use crate::error::{EnvelopeError, FrameError, Token};
use crate::scan::{tokens, SkipRest};

/// What is kept of a skipped oversize envelope: enough to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversize {
    pub channel: String,
    pub subject: String,
    /// Its labels with values of at most [`KEPT_LABEL_BYTES`] (`id`, `rpcID`, `topic`…);
    /// longer ones are skipped like the payload.
    pub labels: Labels,
    /// The whole frame's length on the wire, and the limit it passed.
    pub size: u64,
    pub max: usize,
    /// Stream offset of the frame's first byte.
    pub offset: u64,
}

/// The longest label value an [`Oversize`] keeps.
pub const KEPT_LABEL_BYTES: usize = 256;

/// The rest of an oversize frame, skipped as it arrives.
#[derive(Debug, Clone)]
pub(super) struct Skipping {
    frame: Oversize,
    /// Bytes of the current label value still to skip, and the value so far when kept.
    value_left: u64,
    keep: Option<(ByteString, BytesMut)>,
    labels_left: usize,
    payload_left: u64,
}

impl Skipping {
    /// Bytes still due, counting a label line still to come as one.
    pub(super) fn missing(&self) -> u64 {
        self.value_left + self.payload_left + self.labels_left as u64
    }
}

impl FrameCodec {
    /// Goes on skipping an oversize frame; `Ok(Some(Frame::Oversize))` once it is all
    /// consumed, `Ok(None)` while more of it is due.
    pub(super) fn skip(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(mut st) = self.skipping.take() else {
            return Ok(None);
        };
        loop {
            if st.value_left > 0 {
                let n = st.value_left.min(src.len() as u64) as usize;
                if n == 0 {
                    break;
                }
                if let Some((_, kept)) = st.keep.as_mut() {
                    kept.extend_from_slice(&src[..n]);
                }
                self.advance(src, n);
                st.value_left -= n as u64;
                continue;
            }
            if let Some((name, value)) = st.keep.take() {
                st.frame.labels.insert(name, value.freeze());
            }
            if st.labels_left > 0 {
                let window = &src[..src.len().min(self.limits.max_line_bytes)];
                let Some(lf) = memchr::memchr(b'\n', window) else {
                    if window.len() >= self.limits.max_line_bytes {
                        let max = self.limits.max_line_bytes;
                        let err = self.error(0, EnvelopeError::LineTooLong { max });
                        self.advance(src, src.len());
                        self.discarding = true;
                        return Err(err);
                    }
                    break;
                };
                let (tok, count) = tokens::<2>(&src[..lf], 0);
                let len = (count == 2)
                    .then(|| crate::number::parse_u64(&src[tok[1].clone()]).ok())
                    .flatten();
                let Some(len) = len else {
                    let token = Token::new(&src[..lf]);
                    let err = self.error(0, EnvelopeError::LabelLine { token });
                    self.advance(src, lf + 1);
                    return Err(err);
                };
                if len > self.limits.max_label_bytes as u64 {
                    let err = self.error(
                        0,
                        EnvelopeError::LabelTooLarge {
                            name: Token::new(&src[tok[0].clone()]),
                            len: usize::try_from(len).unwrap_or(usize::MAX),
                            max: self.limits.max_label_bytes,
                        },
                    );
                    self.advance(src, lf + 1);
                    return Err(err);
                }
                // The frame as announced so far must stay within max_skip_bytes too.
                let announced = (self.consumed - st.frame.offset)
                    .saturating_add((lf + 1) as u64)
                    .saturating_add(len)
                    .saturating_add(st.payload_left);
                if announced > self.limits.max_skip_bytes {
                    let err = self.error(
                        0,
                        EnvelopeError::FrameTooLarge {
                            size: announced,
                            max: self.limits.max_frame_bytes,
                        },
                    );
                    self.advance(src, lf + 1);
                    return Err(err);
                }
                st.keep = kept_label(&src[tok[0].clone()], len);
                self.advance(src, lf + 1);
                st.value_left = len;
                st.labels_left -= 1;
                continue;
            }
            if st.payload_left > 0 {
                let n = st.payload_left.min(src.len() as u64) as usize;
                if n == 0 {
                    break;
                }
                self.advance(src, n);
                st.payload_left -= n as u64;
                continue;
            }
            let mut frame = st.frame;
            frame.size = self.consumed - frame.offset;
            return Ok(Some(Frame::Oversize(frame)));
        }
        self.skipping = Some(st);
        Ok(None)
    }
}

/// A label name and a buffer for its value, when the value is short enough to keep.
fn kept_label(name: &[u8], len: u64) -> Option<(ByteString, BytesMut)> {
    if len > KEPT_LABEL_BYTES as u64 {
        return None;
    }
    let name = ByteString::try_from(Bytes::copy_from_slice(name)).ok()?;
    Some((name, BytesMut::with_capacity(len as usize)))
}

/// The skip state for an oversize frame at the start of `src`, whose first
/// `rest.through` bytes (header and whole labels) are buffered.
pub(super) fn start_skip(src: &[u8], rest: SkipRest, offset: u64, max: usize) -> Skipping {
    let text = |r: std::ops::Range<usize>| String::from_utf8_lossy(&src[r]).into_owned();
    let mut labels = Labels::new();
    for (name, value) in rest.labels {
        if value.len() <= KEPT_LABEL_BYTES {
            if let Ok(name) = ByteString::try_from(Bytes::copy_from_slice(&src[name])) {
                labels.insert(name, Bytes::copy_from_slice(&src[value]));
            }
        }
    }
    let (keep, value_left) = match rest.current {
        Some((name, len)) => (kept_label(&src[name], len), len),
        None => (None, 0),
    };
    let frame = Oversize {
        channel: text(rest.channel),
        subject: text(rest.subject),
        labels,
        size: 0,
        max,
        offset,
    };
    Skipping {
        frame,
        value_left,
        keep,
        labels_left: rest.labels_left,
        payload_left: rest.payload,
    }
}
