//! Follower-maze lines: `seq|T[|from[|to]]` events and the user-id line.
//!
//! Input lines end in LF or CRLF; output lines end in CRLF. An event keeps its original
//! bytes (`raw`) so it is forwarded to clients exactly as received.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{MazeError, MazeErrorKind, Token};
use crate::number::{parse_u64, NumberError};

/// What an event does, with its user ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MazeKind {
    /// `seq|F|from|to`: `from` follows `to`; `to` is notified.
    Follow { from: u64, to: u64 },
    /// `seq|U|from|to`: `from` unfollows `to`; nobody is notified.
    Unfollow { from: u64, to: u64 },
    /// `seq|B`: every connected client is notified.
    Broadcast,
    /// `seq|P|from|to`: `to` is notified.
    Private { from: u64, to: u64 },
    /// `seq|S|from`: every current follower of `from` is notified.
    Status { from: u64 },
}

impl MazeKind {
    /// The type letter on the wire.
    pub fn letter(&self) -> char {
        match self {
            MazeKind::Follow { .. } => 'F',
            MazeKind::Unfollow { .. } => 'U',
            MazeKind::Broadcast => 'B',
            MazeKind::Private { .. } => 'P',
            MazeKind::Status { .. } => 'S',
        }
    }
}

/// One event: its sequence number, what it does, and its original bytes without the
/// line terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MazeEvent {
    pub seq: u64,
    pub kind: MazeKind,
    pub raw: Bytes,
}

impl MazeEvent {
    /// Builds an event and its canonical wire text.
    pub fn new(seq: u64, kind: MazeKind) -> Self {
        let mut text = BytesMut::with_capacity(48);
        write_event(&mut text, seq, &kind);
        MazeEvent {
            seq,
            kind,
            raw: text.freeze(),
        }
    }

    /// Appends the notification a client receives: the original bytes and CRLF.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.raw.len() + 2);
        dst.put_slice(&self.raw);
        dst.put_slice(b"\r\n");
    }
}

/// Appends the canonical text of an event, without a line terminator.
///
/// The parser accepts only canonical numbers and single `|` separators, so for every
/// event it accepts this writes back exactly the bytes it read: a router may keep the
/// parsed event and drop the input buffer, and still forward the payload unchanged.
pub fn write_event(dst: &mut BytesMut, seq: u64, kind: &MazeKind) {
    use crate::number::write_u64;
    dst.reserve(64);
    write_u64(dst, seq);
    dst.put_u8(b'|');
    dst.put_u8(kind.letter() as u8);
    let users: [Option<u64>; 2] = match *kind {
        MazeKind::Follow { from, to }
        | MazeKind::Unfollow { from, to }
        | MazeKind::Private { from, to } => [Some(from), Some(to)],
        MazeKind::Status { from } => [Some(from), None],
        MazeKind::Broadcast => [None, None],
    };
    for id in users.into_iter().flatten() {
        dst.put_u8(b'|');
        write_u64(dst, id);
    }
}

/// One decoded line of the maze format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MazeLine {
    /// An event, from the event-source port.
    Event(MazeEvent),
    /// A user-id line (digits only), the first and only line a user client sends.
    UserId(u64),
}

/// The line as it was sent (an event's bytes, a user id's digits), for logs.
impl std::fmt::Display for MazeLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MazeLine::Event(e) => f.write_str(&String::from_utf8_lossy(&e.raw)),
            MazeLine::UserId(id) => write!(f, "{id}"),
        }
    }
}

/// Longest user id line: `u64::MAX` has 20 digits.
const MAX_ID_DIGITS: usize = 20;

/// Parses one line, `line` being everything before the LF (a trailing CR is stripped
/// here). `raw` must hold the same bytes as `line`; the event keeps a slice of it.
pub fn parse_line(raw: Bytes) -> Result<MazeLine, MazeError> {
    let raw = match raw.last() {
        Some(b'\r') => raw.slice(..raw.len() - 1),
        _ => raw,
    };
    if raw.is_empty() {
        return Err(MazeError {
            seq: None,
            kind: MazeErrorKind::Empty,
        });
    }
    if memchr::memchr(b'|', &raw).is_none() {
        return parse_user_id(&raw).map(MazeLine::UserId);
    }
    parse_event(raw).map(MazeLine::Event)
}

/// The sequence number at the start of an event line that could not be parsed whole
/// (one over the length limit): the digits before the first `|`, when they are a
/// canonical non-zero number.
pub fn leading_seq(line: &[u8]) -> Option<u64> {
    let bar = memchr::memchr(b'|', line)?;
    parse_u64(&line[..bar]).ok().filter(|&seq| seq != 0)
}

fn parse_user_id(line: &[u8]) -> Result<u64, MazeError> {
    let bad = || MazeError {
        seq: None,
        kind: MazeErrorKind::BadUserId {
            token: Token::new(line),
        },
    };
    if line.len() > MAX_ID_DIGITS {
        return Err(bad());
    }
    parse_u64(line).map_err(|_| bad())
}

fn number(field: &'static str, tok: &[u8], seq: Option<u64>) -> Result<u64, MazeError> {
    parse_u64(tok).map_err(|e: NumberError| MazeError {
        seq,
        kind: MazeErrorKind::NotNumeric {
            field,
            token: Token::new(tok),
            reason: e.as_str(),
        },
    })
}

fn parse_event(raw: Bytes) -> Result<MazeEvent, MazeError> {
    let mut fields = raw.split(|&b| b == b'|');
    // `split` yields at least one item, and the caller saw a '|', so two.
    let seq_tok = fields.next().unwrap_or_default();
    let seq = number("seq", seq_tok, None)?;
    if seq == 0 {
        return Err(MazeError {
            seq: None,
            kind: MazeErrorKind::ZeroSequence,
        });
    }
    let seq_known = Some(seq);
    let ty = fields.next().unwrap_or_default();
    let rest: Vec<&[u8]> = fields.collect();
    let (letter, expected) = match ty {
        b"F" => ('F', 2),
        b"U" => ('U', 2),
        b"P" => ('P', 2),
        b"B" => ('B', 0),
        b"S" => ('S', 1),
        _ => {
            return Err(MazeError {
                seq: seq_known,
                kind: MazeErrorKind::UnknownType { ty: Token::new(ty) },
            })
        }
    };
    if rest.len() != expected {
        return Err(MazeError {
            seq: seq_known,
            kind: MazeErrorKind::FieldCount {
                ty: letter,
                expected: expected + 2,
                got: rest.len() + 2,
            },
        });
    }
    let user = |i: usize, name: &'static str| number(name, rest[i], seq_known);
    let kind = match letter {
        'F' => MazeKind::Follow {
            from: user(0, "from")?,
            to: user(1, "to")?,
        },
        'U' => MazeKind::Unfollow {
            from: user(0, "from")?,
            to: user(1, "to")?,
        },
        'P' => MazeKind::Private {
            from: user(0, "from")?,
            to: user(1, "to")?,
        },
        'S' => MazeKind::Status {
            from: user(0, "from")?,
        },
        _ => MazeKind::Broadcast,
    };
    Ok(MazeEvent { seq, kind, raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> Result<MazeLine, MazeError> {
        parse_line(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn all_five_types() {
        let cases = [
            ("666|F|60|50", MazeKind::Follow { from: 60, to: 50 }),
            ("1|U|12|9", MazeKind::Unfollow { from: 12, to: 9 }),
            ("542532|B", MazeKind::Broadcast),
            ("43|P|32|56", MazeKind::Private { from: 32, to: 56 }),
            ("634|S|32", MazeKind::Status { from: 32 }),
        ];
        for (text, kind) in cases {
            let MazeLine::Event(e) = ev(text).unwrap() else {
                panic!("{text}")
            };
            assert_eq!(e.kind, kind);
            assert_eq!(&e.raw[..], text.as_bytes());
            assert_eq!(MazeEvent::new(e.seq, kind).raw, e.raw);
        }
    }

    #[test]
    fn crlf_stripped_and_id_lines() {
        let MazeLine::Event(e) = ev("7|B\r").unwrap() else {
            panic!()
        };
        assert_eq!(&e.raw[..], b"7|B");
        assert_eq!(ev("2932").unwrap(), MazeLine::UserId(2932));
        assert_eq!(ev("2932\r").unwrap(), MazeLine::UserId(2932));
        for bad in [" 12 ", "12 ", "abc", "123456789012345678901", "-1"] {
            assert!(
                matches!(ev(bad).unwrap_err().kind, MazeErrorKind::BadUserId { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn errors_keep_the_sequence_number() {
        let e = ev("1|X|1|7").unwrap_err();
        assert_eq!(e.seq, Some(1));
        assert!(matches!(e.kind, MazeErrorKind::UnknownType { .. }));
        let e = ev("5|F|1").unwrap_err();
        assert_eq!(e.seq, Some(5));
        assert_eq!(
            e.kind,
            MazeErrorKind::FieldCount {
                ty: 'F',
                expected: 4,
                got: 3
            }
        );
        let e = ev("6|S|x").unwrap_err();
        assert_eq!(e.seq, Some(6));
        assert!(matches!(
            e.kind,
            MazeErrorKind::NotNumeric { field: "from", .. }
        ));
        let e = ev("x|B").unwrap_err();
        assert_eq!(e.seq, None);
        assert!(matches!(
            e.kind,
            MazeErrorKind::NotNumeric { field: "seq", .. }
        ));
        assert_eq!(ev("0|B").unwrap_err().kind, MazeErrorKind::ZeroSequence);
        assert_eq!(
            ev("9|B|1").unwrap_err().kind,
            MazeErrorKind::FieldCount {
                ty: 'B',
                expected: 2,
                got: 3
            }
        );
        assert_eq!(ev("").unwrap_err().kind, MazeErrorKind::Empty);
        assert_eq!(ev("\r").unwrap_err().kind, MazeErrorKind::Empty);
    }

    #[test]
    fn leading_sequence_numbers() {
        assert_eq!(leading_seq(b"17|B|AAAA"), Some(17));
        assert_eq!(leading_seq(b"17|"), Some(17));
        for none in [&b"AAAA"[..], b"0|B", b"x|B", b"017|B", b"17", b"|B"] {
            assert_eq!(
                leading_seq(none),
                None,
                "{:?}",
                String::from_utf8_lossy(none)
            );
        }
    }

    #[test]
    fn encode_appends_crlf() {
        let mut out = BytesMut::new();
        MazeEvent::new(3, MazeKind::Private { from: 1, to: 2 }).encode(&mut out);
        assert_eq!(&out[..], b"3|P|1|2\r\n");
    }
}
