//! Table 10.1 of the dipper spec (rows F1-F16), and the recorded captures.
//!
//! Where switchyard deliberately differs from the reference reader the test says so:
//! F6 consumes the whole bad line, F8 and F9 reject non-canonical numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use switchyard_codecs::{Envelope, EnvelopeError, Frame, FrameCodec, FrameErrorKind, Limits, Mode};
use tokio_util::codec::{Decoder, Encoder};

fn codec() -> FrameCodec {
    FrameCodec::new(Mode::Envelope, Limits::default())
}

fn one(input: &[u8]) -> (Envelope, BytesMut) {
    let mut buf = BytesMut::from(input);
    match codec().decode(&mut buf).unwrap() {
        Some(Frame::Envelope(e)) => (e, buf),
        other => panic!("{input:?}: {other:?}"),
    }
}

fn err(input: &[u8]) -> (EnvelopeError, BytesMut, FrameCodec) {
    let mut buf = BytesMut::from(input);
    let mut c = codec();
    match c.decode(&mut buf) {
        Err(e) => match e.kind {
            FrameErrorKind::Envelope(env) => (env, buf, c),
            k => panic!("{input:?}: {k:?}"),
        },
        Ok(f) => panic!("{input:?}: decoded {f:?}"),
    }
}

#[test]
fn f1_labels_and_payload() {
    let (e, rest) = one(b"a b 1 2\nk 1\nv{}");
    assert_eq!((&*e.channel, &*e.subject), ("a", "b"));
    assert_eq!(e.labels.get_str("k"), Some("v"));
    assert_eq!(e.labels.len(), 1);
    assert_eq!(&e.payload[..], b"{}");
    assert!(rest.is_empty());
}

#[test]
fn f2_crlf_tolerated() {
    let (e, rest) = one(b"a b 0 2\r\n{}");
    assert_eq!(&e.payload[..], b"{}");
    assert!(rest.is_empty());
}

#[test]
fn f3_whitespace_tolerated() {
    for input in [&b"a\tb\t0\t2\n{}"[..], b"  a b 0 2\n{}", b"a b 0 2   \n{}"] {
        let (e, rest) = one(input);
        assert!(e.is("a", "b"), "{input:?}");
        assert_eq!(&e.payload[..], b"{}");
        assert!(rest.is_empty());
    }
}

#[test]
fn f4_leading_empty_line() {
    let (e, mut rest, mut c) = err(b"\na b 0 2\n{}");
    assert_eq!(e, EnvelopeError::UnexpectedNewline { fields: 0 });
    assert_eq!(&rest[..], b"a b 0 2\n{}", "only the LF is consumed");
    assert!(e.to_string().contains("unexpected newline"));
    let Some(Frame::Envelope(next)) = c.decode(&mut rest).unwrap() else {
        panic!()
    };
    assert_eq!(&next.payload[..], b"{}");
}

#[test]
fn f5_legacy_three_fields() {
    let (e, rest, _) = err(b"a b 2\n{}");
    assert_eq!(e, EnvelopeError::UnexpectedNewline { fields: 3 });
    assert_eq!(
        &rest[..],
        b"{}",
        "the payload is read as the start of the next envelope"
    );
}

#[test]
fn f6_five_fields() {
    let (e, rest, _) = err(b"a b 0 2 9\n{}");
    assert_eq!(e, EnvelopeError::ExpectedNewline { fields: 5 });
    assert!(e.to_string().contains("expected newline"));
    // Deliberate difference: the reference reader leaves the LF unread (and reports an
    // empty line next); switchyard drops the whole bad line.
    assert_eq!(&rest[..], b"{}");
}

#[test]
fn f7_not_an_integer() {
    let (e, _, _) = err(b"a b 0 x\n");
    assert!(matches!(
        e,
        EnvelopeError::ExpectedInteger { field: "size", .. }
    ));
    assert!(e.to_string().contains("expected integer"));
}

#[test]
fn f8_negative_size_rejected() {
    // Deliberate difference: the reference reader treats -2 as 0 and leaves `{}`
    // unread; switchyard rejects a negative number, which no writer produces.
    let (e, rest, _) = err(b"a b 0 -2\n{}");
    assert!(matches!(
        e,
        EnvelopeError::ExpectedInteger {
            field: "size",
            reason: "not a decimal number",
            ..
        }
    ));
    assert_eq!(&rest[..], b"{}");
}

#[test]
fn f9_only_canonical_decimal() {
    // Deliberate difference: the reference reader takes 010 as octal 8, and also
    // accepts +2, 0x2 and 1_0. switchyard reads and writes plain decimal only.
    let (e, _, _) = err(b"a b 0 010\n01234567");
    assert!(matches!(
        e,
        EnvelopeError::ExpectedInteger {
            reason: "leading zero",
            ..
        }
    ));
    for odd in ["+2", "0x2", "1_0"] {
        let (e, _, _) = err(format!("a b 0 {odd}\n{{}}").as_bytes());
        assert!(
            matches!(
                e,
                EnvelopeError::ExpectedInteger {
                    reason: "not a decimal number",
                    ..
                }
            ),
            "{odd}"
        );
    }
    let (e, _, _) = err(b"a b 01 0\n");
    assert!(matches!(
        e,
        EnvelopeError::ExpectedInteger {
            field: "numLabels",
            ..
        }
    ));
}

#[test]
fn f10_eof_inside_payload() {
    let mut buf = BytesMut::from(&b"a b 0 5\n{}"[..]);
    let mut c = codec();
    assert!(c.decode(&mut buf).unwrap().is_none());
    let e = c.decode_eof(&mut buf).unwrap_err();
    assert!(matches!(
        e.kind,
        FrameErrorKind::Envelope(EnvelopeError::Truncated { missing: 3 })
    ));
    assert!(e.to_string().contains("unexpected EOF"));
}

#[test]
fn f11_empty_and_short_labels() {
    let (e, rest) = one(b"a b 2 0\nk 0\nk2 1\nv");
    assert_eq!(e.labels.get_str("k"), Some(""));
    assert_eq!(e.labels.get_str("k2"), Some("v"));
    assert!(e.payload.is_empty() && rest.is_empty());
}

#[test]
fn f12_lf_inside_a_value() {
    let (e, rest) = one(b"a b 1 0\nk 3\nx\ny");
    assert_eq!(e.labels.get_str("k"), Some("x\ny"));
    assert!(rest.is_empty());
}

#[test]
fn f13_duplicate_name_last_wins() {
    let (e, rest) = one(b"a b 2 0\nk 1\nxk 1\ny");
    assert_eq!(e.labels.get_str("k"), Some("y"));
    assert_eq!(e.labels.len(), 1);
    assert!(rest.is_empty());
}

#[test]
fn f14_label_line_without_length() {
    let (e, _, _) = err(b"a b 1 0\nk\nv");
    assert!(matches!(e, EnvelopeError::LabelLine { .. }));
    assert!(e.to_string().contains("unable to fetch message label name"));
}

#[test]
fn f15_size_counts_bytes() {
    let (e, rest) = one("a b 0 2\né".as_bytes());
    assert_eq!(&e.payload[..], "é".as_bytes());
    assert!(rest.is_empty());
}

#[test]
fn f16_any_label_order() {
    let env = Envelope::new("rpc", "call")
        .with_label("rpcID", "7")
        .with_label("feature", "driver:x")
        .with_label("method", "echo")
        .with_payload(&b"{\"a\": 1}"[..]);
    let records: Vec<Vec<u8>> = env
        .labels
        .iter()
        .map(|(n, v)| [format!("{n} {}\n", v.len()).as_bytes(), v].concat())
        .collect();
    for order in [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ] {
        let mut wire = b"rpc call 3 8\n".to_vec();
        for i in order {
            wire.extend_from_slice(&records[i]);
        }
        wire.extend_from_slice(b"{\"a\": 1}");
        let (got, rest) = one(&wire);
        assert!(rest.is_empty());
        for (name, value) in env.labels.iter() {
            assert_eq!(got.labels.get(name), Some(value), "{order:?}");
        }
        assert_eq!(got.payload, env.payload);
    }
}

/// Every recorded capture decodes into whole frames with nothing left over, and
/// re-encoding each frame gives back the recorded bytes exactly.
#[test]
fn recorded_captures_decode_and_round_trip() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dipper-captures");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("in" | "out")
        ) {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut c = codec();
        let mut again = BytesMut::new();
        let mut frames = 0;
        while let Some(frame) = c
            .decode_eof(&mut buf)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        {
            let Frame::Envelope(env) = frame else {
                panic!()
            };
            c.encode(&env, &mut again).unwrap();
            frames += 1;
        }
        assert!(buf.is_empty(), "{}", path.display());
        assert!(frames > 0, "{}", path.display());
        assert_eq!(&again[..], &bytes[..], "{}", path.display());
    }
    assert_eq!(files, 10);
}

/// Every quoted envelope example in `PROTOCOL.md` decodes to exactly one envelope and
/// encodes back to the same bytes, so the reference cannot drift from the codec.
#[test]
fn protocol_md_examples_decode_and_re_encode() {
    let doc = include_str!("../PROTOCOL.md");
    let mut seen = 0;
    for line in doc.lines() {
        let Some(start) = line.find('"') else {
            continue;
        };
        let quoted = &line[start..];
        let is_envelope = line.starts_with("-> \"")
            || line.starts_with("<- \"")
            || line.contains(" -> broker   \"")
            || line.contains(" -> client   \"")
            || line.starts_with("\"rpc ");
        if !is_envelope {
            continue;
        }
        let body = quoted.trim().trim_matches('"');
        let bytes = body.replace("\\n", "\n").replace("\\\"", "\"");
        let (e, rest) = one(bytes.as_bytes());
        assert!(rest.is_empty(), "{line}: {} bytes left over", rest.len());
        let mut out = BytesMut::new();
        e.encode(&mut out).unwrap();
        assert_eq!(&out[..], bytes.as_bytes(), "{line}");
        seen += 1;
    }
    assert!(seen >= 7, "only {seen} examples found");
}
