//! The server side of the NATS text protocol, as a client reads it: `INFO`, `MSG`,
//! `PING`, `PONG`, `+OK` and `-ERR`. Parsing borrows from the read buffer (no copy or
//! allocation per message), and a frame not yet whole in the buffer is left for the
//! next read. The client says `"headers":false` in its `CONNECT`, so `HMSG` never comes.

use thiserror::Error;

/// A control line longer than this without its end is refused: a subject or an `INFO`
/// is far shorter, so the peer is not speaking NATS.
pub const MAX_LINE: usize = 64 << 10;
/// The largest `MSG` payload read (the server's own `max_payload` is 1 MiB by default).
pub const MAX_PAYLOAD: usize = 64 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("a protocol line of more than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("unknown protocol operation: {0:?}")]
    Unknown(String),
    #[error("malformed {op} line: {line:?}")]
    Malformed { op: &'static str, line: String },
    #[error("a MSG payload of {0} bytes (at most {MAX_PAYLOAD})")]
    TooBig(usize),
    #[error("a MSG payload not followed by CRLF")]
    PayloadEnd,
}

/// One message delivered to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg<'a> {
    pub subject: &'a [u8],
    pub sid: &'a [u8],
    pub reply: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

/// One operation from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// The JSON object after `INFO `.
    Info(&'a [u8]),
    Msg(Msg<'a>),
    Ping,
    Pong,
    Ok,
    /// The text of `-ERR`, its quotes taken off.
    Err(&'a [u8]),
}

fn is_space(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_space(last) {
            break;
        }
        s = rest;
    }
    s
}

fn malformed(op: &'static str, line: &[u8]) -> ProtoError {
    ProtoError::Malformed {
        op,
        line: String::from_utf8_lossy(line).into_owned(),
    }
}

/// A decimal length, digits only (`+5`, `-1` and the empty field are refused).
fn parse_len(field: &[u8]) -> Option<usize> {
    if field.is_empty() || field.len() > 12 {
        return None;
    }
    field.iter().try_fold(0usize, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + usize::from(b - b'0'))
    })
}

/// The first operation of `buf` and the bytes it takes, or `None` when it is not
/// whole yet (read more and call again with the same bytes in front).
pub fn parse(buf: &[u8]) -> Result<Option<(Op<'_>, usize)>, ProtoError> {
    let Some(lf) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > MAX_LINE {
            Err(ProtoError::LineTooLong)
        } else {
            Ok(None)
        };
    };
    if lf > MAX_LINE {
        return Err(ProtoError::LineTooLong);
    }
    let line = buf[..lf].strip_suffix(b"\r").unwrap_or(&buf[..lf]);
    let verb_end = line.iter().position(is_space).unwrap_or(line.len());
    let (verb, args) = (&line[..verb_end], trim(&line[verb_end..]));
    let after = lf + 1;
    // Operation names are case-insensitive in the protocol.
    let op = match verb.to_ascii_uppercase().as_slice() {
        b"MSG" => return parse_msg(buf, line, args, after),
        b"PING" if args.is_empty() => Op::Ping,
        b"PONG" if args.is_empty() => Op::Pong,
        b"+OK" if args.is_empty() => Op::Ok,
        b"-ERR" => {
            let text = args
                .strip_prefix(b"'")
                .and_then(|a| a.strip_suffix(b"'"))
                .unwrap_or(args);
            Op::Err(text)
        }
        b"INFO" if !args.is_empty() => Op::Info(args),
        b"INFO" => return Err(malformed("INFO", line)),
        b"PING" | b"PONG" | b"+OK" => return Err(malformed("control", line)),
        _ => {
            return Err(ProtoError::Unknown(
                String::from_utf8_lossy(line).into_owned(),
            ))
        }
    };
    Ok(Some((op, after)))
}

/// `MSG <subject> <sid> [reply-to] <#bytes>` then the payload and CRLF.
fn parse_msg<'a>(
    buf: &'a [u8],
    line: &[u8],
    args: &'a [u8],
    after: usize,
) -> Result<Option<(Op<'a>, usize)>, ProtoError> {
    let mut fields = args.split(is_space).filter(|f| !f.is_empty());
    let (subject, sid, third, fourth, extra) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    );
    let (subject, sid, reply, len) = match (subject, sid, third, fourth, extra) {
        (Some(s), Some(i), Some(len), None, None) => (s, i, None, len),
        (Some(s), Some(i), Some(r), Some(len), None) => (s, i, Some(r), len),
        _ => return Err(malformed("MSG", line)),
    };
    let len = parse_len(len).ok_or_else(|| malformed("MSG", line))?;
    if len > MAX_PAYLOAD {
        return Err(ProtoError::TooBig(len));
    }
    let end = after + len;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ProtoError::PayloadEnd);
    }
    let msg = Msg {
        subject,
        sid,
        reply,
        payload: &buf[after..end],
    };
    Ok(Some((Op::Msg(msg), end + 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<'a>(subject: &'a str, sid: &'a str, reply: Option<&'a str>, payload: &'a str) -> Op<'a> {
        Op::Msg(Msg {
            subject: subject.as_bytes(),
            sid: sid.as_bytes(),
            reply: reply.map(str::as_bytes),
            payload: payload.as_bytes(),
        })
    }

    /// Every operation of `input`, parsed as if it came `step` bytes per read.
    fn parse_in_steps(input: &[u8], step: usize) -> Result<Vec<String>, ProtoError> {
        let (mut buf, mut ops, mut fed) = (Vec::new(), Vec::new(), 0);
        loop {
            while let Some((op, n)) = parse(&buf)? {
                ops.push(format!("{op:?}"));
                buf.drain(..n);
            }
            if fed == input.len() {
                return Ok(ops);
            }
            let to = (fed + step).min(input.len());
            buf.extend_from_slice(&input[fed..to]);
            fed = to;
        }
    }

    #[test]
    fn whole_operations() {
        let info = br#"INFO {"server_id":"x","version":"2.15.1","max_payload":1048576}"#;
        let mut info_line = info.to_vec();
        info_line.extend_from_slice(b"\r\n");
        let cases: Vec<(&[u8], Op<'_>, usize)> = vec![
            (b"PING\r\n", Op::Ping, 6),
            (b"PONG\r\n", Op::Pong, 6),
            (b"ping\r\n", Op::Ping, 6),
            (b"+OK\r\n", Op::Ok, 5),
            (b"PING\n", Op::Ping, 5),
            (
                b"-ERR 'Unknown Protocol Operation'\r\n",
                Op::Err(b"Unknown Protocol Operation"),
                35,
            ),
            (
                b"-ERR 'Slow Consumer'\r\nPING\r\n",
                Op::Err(b"Slow Consumer"),
                22,
            ),
            (&info_line, Op::Info(&info[5..]), info_line.len()),
            (
                b"MSG a.b 1 5\r\nhello\r\n",
                msg("a.b", "1", None, "hello"),
                20,
            ),
            (
                b"MSG a 9 _INBOX.x.7 2\r\nhi\r\n",
                msg("a", "9", Some("_INBOX.x.7"), "hi"),
                26,
            ),
            (b"msg a  1\t0\r\n\r\n", msg("a", "1", None, ""), 14),
            (
                b"MSG a 1 4\r\na\r\nb\r\nPONG\r\n",
                msg("a", "1", None, "a\r\nb"),
                17,
            ),
        ];
        for (input, want, used) in cases {
            assert_eq!(
                parse(input),
                Ok(Some((want, used))),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn not_yet_whole() {
        let cases: [&[u8]; 7] = [
            b"",
            b"PIN",
            b"PING\r",
            b"MSG a 1 5\r\n",
            b"MSG a 1 5\r\nhel",
            b"MSG a 1 5\r\nhello",
            b"MSG a 1 5\r\nhello\r",
        ];
        for input in cases {
            assert_eq!(
                parse(input),
                Ok(None),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn refused() {
        let long = vec![b'x'; MAX_LINE + 1];
        let cases: Vec<(&[u8], &str)> = vec![
            (b"HELLO\r\n", "unknown"),
            (b"HMSG a 1 2 4\r\nhi\r\nxx\r\n", "unknown"),
            (b"MSG a 5\r\nhello\r\n", "malformed"),
            (b"MSG a 1 r x 5\r\nhello\r\n", "malformed"),
            (b"MSG a 1 -5\r\n", "malformed"),
            (b"MSG a 1 +5\r\n", "malformed"),
            (b"MSG a 1 99999999999\r\n", "bytes (at most"),
            (b"MSG a 1 2\r\nhello\r\n", "not followed by CRLF"),
            (b"PING x\r\n", "malformed"),
            (b"INFO\r\n", "malformed"),
            (&long, "more than"),
        ];
        for (input, want) in cases {
            let got = parse(input).map(|o| o.map(|(op, n)| (format!("{op:?}"), n)));
            let err = got.expect_err(&String::from_utf8_lossy(&input[..input.len().min(40)]));
            assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        }
    }

    #[test]
    fn split_across_reads() {
        let stream = b"INFO {\"a\":1}\r\nPING\r\nMSG s.1 7 _INBOX.q.42 11\r\nhello world\r\n\
                       +OK\r\nMSG s.2 7 3\r\n\r\n\r\r\nPONG\r\n-ERR 'Authorization Violation'\r\n";
        let want = vec![
            format!("{:?}", Op::Info(b"{\"a\":1}")),
            format!("{:?}", Op::Ping),
            format!("{:?}", msg("s.1", "7", Some("_INBOX.q.42"), "hello world")),
            format!("{:?}", Op::Ok),
            format!("{:?}", msg("s.2", "7", None, "\r\n\r")),
            format!("{:?}", Op::Pong),
            format!("{:?}", Op::Err(b"Authorization Violation")),
        ];
        for step in [1, 2, 3, 5, 7, 13, 64, stream.len()] {
            assert_eq!(
                parse_in_steps(stream, step),
                Ok(want.clone()),
                "step {step}"
            );
        }
    }
}
