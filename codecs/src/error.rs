//! Typed decode and encode errors.
//!
//! Every error names what was wrong and where: [`FrameError::offset`] is the byte offset
//! in the stream (counted from the connection's first byte) of the line that failed.

use std::fmt;

use crate::number::NumberError;

/// A token quoted in an error, cut short so a hostile line cannot flood the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    const MAX: usize = 32;

    pub(crate) fn new(bytes: &[u8]) -> Self {
        let cut = &bytes[..bytes.len().min(Self::MAX)];
        let mut s = String::from_utf8_lossy(cut).escape_debug().to_string();
        if bytes.len() > Self::MAX {
            s.push('…');
        }
        Token(s)
    }

    /// The quoted text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What was wrong with a follower-maze line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MazeErrorKind {
    #[error("empty line")]
    Empty,
    #[error("unknown event type `{ty}`")]
    UnknownType { ty: Token },
    #[error("event type {ty} takes {expected} fields, got {got}")]
    FieldCount {
        ty: char,
        expected: usize,
        got: usize,
    },
    #[error("field {field} is not a number: `{token}` ({reason})")]
    NotNumeric {
        field: &'static str,
        token: Token,
        reason: &'static str,
    },
    #[error("sequence number 0 (they start at 1)")]
    ZeroSequence,
    #[error("invalid user id line `{token}` (digits only, at most 20)")]
    BadUserId { token: Token },
    #[error("line longer than {max} bytes")]
    LineTooLong { max: usize },
}

/// A malformed follower-maze line. `seq` is set when the sequence number parsed, so a
/// router can consume that number as a no-op instead of stalling the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct MazeError {
    pub seq: Option<u64>,
    pub kind: MazeErrorKind,
}

/// What was wrong with a dipper envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Fewer than four header fields, or an empty line (the reference reader's words).
    #[error("unexpected newline: envelope header has {fields} of 4 fields")]
    UnexpectedNewline { fields: usize },
    /// More than four header fields (the reference reader's words).
    #[error("expected newline: envelope header has {fields} fields, 4 expected")]
    ExpectedNewline { fields: usize },
    #[error("expected integer for {field}, got `{token}` ({reason})")]
    ExpectedInteger {
        field: &'static str,
        token: Token,
        reason: &'static str,
    },
    #[error("{field} is not valid utf-8")]
    InvalidUtf8 { field: &'static str },
    /// A label line that is not `name len` (the reference reader's words).
    #[error("unable to fetch message label name: `{token}`")]
    LabelLine { token: Token },
    #[error("{count} labels, at most {max} allowed")]
    TooManyLabels { count: usize, max: usize },
    #[error("label {name} is {len} bytes, at most {max} allowed")]
    LabelTooLarge { name: Token, len: usize, max: usize },
    #[error("frame of at least {size} bytes, at most {max} allowed")]
    FrameTooLarge { size: u64, max: usize },
    #[error("line longer than {max} bytes")]
    LineTooLong { max: usize },
    #[error("unexpected EOF: {missing} more bytes of the frame were due")]
    Truncated { missing: usize },
    /// An encoder refused a channel, subject or label name that would break framing.
    #[error("{field} `{token}` must be non-empty and free of whitespace")]
    InvalidToken { field: &'static str, token: Token },
}

impl EnvelopeError {
    pub(crate) fn integer(field: &'static str, tok: &[u8], e: NumberError) -> Self {
        EnvelopeError::ExpectedInteger {
            field,
            token: Token::new(tok),
            reason: e.as_str(),
        }
    }
}

/// Which format failed, and why.
#[derive(Debug, thiserror::Error)]
pub enum FrameErrorKind {
    #[error("maze line: {0}")]
    Maze(#[from] MazeError),
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A decode or encode error, with the stream offset of the line that failed.
///
/// After a decode error the codec is positioned after the bad line, so a caller may keep
/// decoding (the maze event source, a driver's stdout) or close the connection (the
/// broker port).
#[derive(Debug, thiserror::Error)]
#[error("{kind} (at byte {offset})")]
pub struct FrameError {
    pub offset: u64,
    pub kind: FrameErrorKind,
}

impl FrameError {
    /// The input ended inside a frame (the peer closed mid-frame): nothing it sent
    /// was wrong, it just stopped.
    pub fn is_truncated(&self) -> bool {
        matches!(
            self.kind,
            FrameErrorKind::Envelope(EnvelopeError::Truncated { .. })
        )
    }

    /// The sequence number of a malformed maze event, when it parsed.
    pub fn maze_seq(&self) -> Option<u64> {
        match &self.kind {
            FrameErrorKind::Maze(e) => e.seq,
            _ => None,
        }
    }
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError {
            offset: 0,
            kind: FrameErrorKind::Io(e),
        }
    }
}
