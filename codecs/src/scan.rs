//! The cheap pass over envelope bytes: find where a frame ends, check every limit
//! against the header and label lines, and copy nothing.
//!
//! [`scan`] is run again from the start each time more bytes arrive. That costs the
//! header and label lines, never the payload, and keeps the decoder stateless.

use std::ops::Range;

use crate::error::{EnvelopeError, Token};
use crate::limits::Limits;
use crate::number::{parse_u64, parse_usize};

/// Where a complete frame's parts lie, relative to its first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub channel: Range<usize>,
    pub subject: Range<usize>,
    pub labels: Vec<(Range<usize>, Range<usize>)>,
    pub payload: Range<usize>,
}

impl Layout {
    /// The frame's length on the wire.
    pub fn len(&self) -> usize {
        self.payload.end
    }

    pub fn is_empty(&self) -> bool {
        self.payload.end == 0
    }
}

/// What [`scan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// The frame is not all here; at least `need` more bytes are due.
    Incomplete {
        need: usize,
    },
    Complete(Layout),
}

/// How much of the input a failed frame takes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consume {
    /// The first `n` bytes: the bad lines, so the next decode starts on a fresh line.
    Through(usize),
    /// Everything buffered, and further input up to the next LF (a line over the limit).
    Line,
    /// A well-formed frame over `max_frame_bytes`: its header says how long the rest
    /// is, so the decoder skips it, unbuffered, and the stream stays in step.
    Skip(Box<SkipRest>),
}

/// What is left of a frame too large to buffer, once `through` bytes are consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipRest {
    pub through: usize,
    pub channel: Range<usize>,
    pub subject: Range<usize>,
    /// Labels read whole before the size was known to be over the limit.
    pub labels: Vec<(Range<usize>, Range<usize>)>,
    /// The label whose value comes next (its line is read): name and value length.
    pub current: Option<(Range<usize>, u64)>,
    /// Label lines still to come after `current`.
    pub labels_left: usize,
    pub payload: u64,
}

/// A frame that cannot be read: the error, where in the frame it was found, and what
/// to drop so decoding can resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub error: EnvelopeError,
    pub at: usize,
    pub consume: Consume,
}

/// The whitespace Go's `Fscanln` skips between fields (LF ends the line instead).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

/// Ranges of the whitespace-separated tokens of `line`, offset by `base`; at most
/// `N` are returned, and the count of all of them.
pub(crate) fn tokens<const N: usize>(line: &[u8], base: usize) -> ([Range<usize>; N], usize) {
    let mut out: [Range<usize>; N] = std::array::from_fn(|_| 0..0);
    let mut count = 0;
    let mut i = 0;
    while i < line.len() {
        if is_space(line[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < line.len() && !is_space(line[i]) {
            i += 1;
        }
        if count < N {
            out[count] = base + start..base + i;
        }
        count += 1;
    }
    (out, count)
}

/// Finds the LF ending the line that starts at `from`. `Ok(None)`: not yet buffered.
fn line_end(
    buf: &[u8],
    from: usize,
    limits: &Limits,
    at: usize,
) -> Result<Option<usize>, ScanError> {
    let window = &buf[from..buf.len().min(from + limits.max_line_bytes)];
    match memchr::memchr(b'\n', window) {
        Some(i) => Ok(Some(from + i)),
        None if window.len() >= limits.max_line_bytes => Err(ScanError {
            error: EnvelopeError::LineTooLong {
                max: limits.max_line_bytes,
            },
            at,
            consume: Consume::Line,
        }),
        None => Ok(None),
    }
}

/// Checks the envelope at the start of `buf`.
pub fn scan(buf: &[u8], limits: &Limits) -> Result<Scan, ScanError> {
    let Some(lf) = line_end(buf, 0, limits, 0)? else {
        return Ok(Scan::Incomplete { need: 1 });
    };
    let fail = |error, at, through| ScanError {
        error,
        at,
        consume: Consume::Through(through),
    };
    let (tok, count) = tokens::<4>(&buf[..lf], 0);
    if count < 4 {
        return Err(fail(
            EnvelopeError::UnexpectedNewline { fields: count },
            0,
            lf + 1,
        ));
    }
    if count > 4 {
        return Err(fail(
            EnvelopeError::ExpectedNewline { fields: count },
            0,
            lf + 1,
        ));
    }
    let [channel, subject, n_tok, size_tok] = tok;
    let n_labels = parse_usize(&buf[n_tok.clone()]).map_err(|e| {
        fail(
            EnvelopeError::integer("numLabels", &buf[n_tok], e),
            0,
            lf + 1,
        )
    })?;
    let size = parse_u64(&buf[size_tok.clone()])
        .map_err(|e| fail(EnvelopeError::integer("size", &buf[size_tok], e), 0, lf + 1))?;
    if n_labels > limits.max_labels {
        return Err(fail(
            EnvelopeError::TooManyLabels {
                count: n_labels,
                max: limits.max_labels,
            },
            0,
            lf + 1,
        ));
    }
    let frame_size = |pos: usize| (pos as u64).saturating_add(size);
    let too_large = |pos: usize| frame_size(pos) > limits.max_frame_bytes as u64;
    let skippable = |pos: usize| frame_size(pos) <= limits.max_skip_bytes;
    let mut pos = lf + 1;
    let skip =
        |error, at, labels: &[(Range<usize>, Range<usize>)], current, left, through| ScanError {
            error,
            at,
            consume: Consume::Skip(Box::new(SkipRest {
                through,
                channel: channel.clone(),
                subject: subject.clone(),
                labels: labels.to_vec(),
                current,
                labels_left: left,
                payload: size,
            })),
        };
    if too_large(pos) {
        let error = EnvelopeError::FrameTooLarge {
            size: frame_size(pos),
            max: limits.max_frame_bytes,
        };
        return Err(if skippable(pos) {
            skip(error, 0, &[], None, n_labels, pos)
        } else {
            fail(error, 0, pos)
        });
    }
    let mut labels = Vec::with_capacity(n_labels);
    for i in 0..n_labels {
        let at = pos;
        let Some(lf) = line_end(buf, pos, limits, at)? else {
            return Ok(Scan::Incomplete { need: 1 });
        };
        let (tok, count) = tokens::<2>(&buf[pos..lf], pos);
        if count != 2 {
            return Err(fail(
                EnvelopeError::LabelLine {
                    token: Token::new(&buf[pos..lf]),
                },
                at,
                lf + 1,
            ));
        }
        let [name, len_tok] = tok;
        let len = parse_usize(&buf[len_tok.clone()]).map_err(|e| {
            fail(
                EnvelopeError::integer("label length", &buf[len_tok], e),
                at,
                lf + 1,
            )
        })?;
        if len > limits.max_label_bytes {
            let error = EnvelopeError::LabelTooLarge {
                name: Token::new(&buf[name]),
                len,
                max: limits.max_label_bytes,
            };
            return Err(fail(error, at, lf + 1));
        }
        pos = lf + 1;
        if too_large(pos + len) {
            let error = EnvelopeError::FrameTooLarge {
                size: frame_size(pos + len),
                max: limits.max_frame_bytes,
            };
            if !skippable(pos + len) {
                return Err(fail(error, at, pos));
            }
            let current = Some((name, len as u64));
            return Err(skip(error, at, &labels, current, n_labels - i - 1, pos));
        }
        if buf.len() < pos + len {
            return Ok(Scan::Incomplete {
                need: pos + len - buf.len(),
            });
        }
        labels.push((name, pos..pos + len));
        pos += len;
    }
    // `too_large` above bounds `size` by `max_frame_bytes`, a usize.
    let end = pos + size as usize;
    if buf.len() < end {
        return Ok(Scan::Incomplete {
            need: end - buf.len(),
        });
    }
    Ok(Scan::Complete(Layout {
        channel,
        subject,
        labels,
        payload: pos..end,
    }))
}
