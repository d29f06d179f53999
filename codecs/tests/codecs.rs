//! Codec tests in the manner of tokio-util's `tests/codecs.rs`: every valid frame fed
//! whole, a byte at a time and split at random points; truncated and oversize tables;
//! arbitrary bytes never panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use switchyard_codecs::{
    Envelope, EnvelopeError, Frame, FrameCodec, FrameErrorKind, Limits, MazeErrorKind, MazeEvent,
    MazeKind, MazeLine, Mode,
};
use tokio_util::codec::{Decoder, Encoder};

mod common;
use common::split_at_points;

/// Feeds `chunks` in order and collects every frame; panics on any error.
fn feed<'a>(mut codec: FrameCodec, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            out.push(f);
        }
    }
    while let Some(f) = codec.decode_eof(&mut buf).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty());
    out
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z:_.-]{1,12}"
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        token(),
        token(),
        proptest::collection::vec(
            (token(), proptest::collection::vec(any::<u8>(), 0..48)),
            0..5,
        ),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(ch, subj, labels, payload)| {
            let mut e = Envelope::new(ch, subj).with_payload(payload);
            for (n, v) in labels {
                e.labels.insert(n, v);
            }
            e
        })
}

fn maze_event() -> impl Strategy<Value = MazeEvent> {
    let id = 0u64..1_000_000;
    (
        1u64..u64::MAX,
        prop_oneof![
            (id.clone(), id.clone()).prop_map(|(from, to)| MazeKind::Follow { from, to }),
            (id.clone(), id.clone()).prop_map(|(from, to)| MazeKind::Unfollow { from, to }),
            Just(MazeKind::Broadcast),
            (id.clone(), id.clone()).prop_map(|(from, to)| MazeKind::Private { from, to }),
            id.prop_map(|from| MazeKind::Status { from }),
        ],
    )
        .prop_map(|(seq, kind)| MazeEvent::new(seq, kind))
}

fn wire_envelopes(envs: &[Envelope]) -> Vec<u8> {
    let mut c = FrameCodec::detect(Limits::default());
    let mut b = BytesMut::new();
    for e in envs {
        c.encode(e, &mut b).unwrap();
    }
    b.to_vec()
}

fn wire_maze(events: &[MazeEvent], crlf: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(&e.raw);
        out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    out
}

fn as_envelopes(frames: Vec<Frame>) -> Vec<Envelope> {
    frames
        .into_iter()
        .map(|f| match f {
            Frame::Envelope(e) => e,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn as_events(frames: Vec<Frame>) -> Vec<MazeEvent> {
    frames
        .into_iter()
        .map(|f| match f {
            Frame::Maze(MazeLine::Event(e)) => e,
            other => panic!("{other:?}"),
        })
        .collect()
}

proptest! {
    #[test]
    fn envelopes_whole_bytewise_and_split(envs in proptest::collection::vec(envelope(), 1..6), points in proptest::collection::vec(any::<usize>(), 0..12)) {
        let wire = wire_envelopes(&envs);
        let whole = as_envelopes(feed(FrameCodec::detect(Limits::default()), [&wire[..]]));
        prop_assert_eq!(&whole, &envs);
        let bytewise = as_envelopes(feed(FrameCodec::new(Mode::Envelope, Limits::default()), wire.chunks(1)));
        prop_assert_eq!(&bytewise, &envs);
        let split = as_envelopes(feed(FrameCodec::detect(Limits::default()), split_at_points(&wire, points)));
        prop_assert_eq!(&split, &envs);
    }

    #[test]
    fn maze_whole_bytewise_and_split(events in proptest::collection::vec(maze_event(), 1..40), crlf in any::<bool>(), points in proptest::collection::vec(any::<usize>(), 0..12)) {
        let wire = wire_maze(&events, crlf);
        prop_assert_eq!(&as_events(feed(FrameCodec::detect(Limits::default()), [&wire[..]])), &events);
        prop_assert_eq!(&as_events(feed(FrameCodec::new(Mode::Maze, Limits::default()), wire.chunks(1))), &events);
        prop_assert_eq!(&as_events(feed(FrameCodec::detect(Limits::default()), split_at_points(&wire, points))), &events);
    }

    /// Whatever line the parser accepts, re-rendering the parsed event gives back the
    /// same bytes: the router relies on it to forward payloads unchanged.
    #[test]
    fn accepted_lines_render_back_identically(line in "[0-9]{1,4}\\|[FUBPSX]?(\\|[0-9]{1,3}){0,3}") {
        let mut codec = FrameCodec::new(Mode::Maze, Limits::default());
        let mut buf = BytesMut::from(format!("{line}\n").as_bytes());
        if let Ok(Some(Frame::Maze(MazeLine::Event(e)))) = codec.decode(&mut buf) {
            let mut again = BytesMut::new();
            switchyard_codecs::maze::write_event(&mut again, e.seq, &e.kind);
            prop_assert_eq!(&again[..], line.as_bytes());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), mode in prop_oneof![Just(Mode::Detect), Just(Mode::Maze), Just(Mode::Envelope)], points in proptest::collection::vec(any::<usize>(), 0..8)) {
        let limits = Limits { max_frame_bytes: 256, max_labels: 4, max_label_bytes: 64, max_line_bytes: 64, ..Limits::default() };
        let mut codec = FrameCodec::new(mode, limits);
        let mut buf = BytesMut::new();
        let mut fed = 0u64;
        for chunk in split_at_points(&bytes, points) {
            buf.extend_from_slice(chunk);
            fed += chunk.len() as u64;
            loop {
                let before = codec.consumed();
                match codec.decode(&mut buf) {
                    Ok(None) => break,
                    Ok(Some(_)) | Err(_) => prop_assert!(codec.consumed() > before, "no progress"),
                }
                prop_assert!(buf.len() <= (limits.max_frame_bytes).max(limits.max_line_bytes) + chunk.len());
            }
        }
        while !buf.is_empty() {
            let before = codec.consumed();
            if let Ok(None) = codec.decode_eof(&mut buf) { break }
            prop_assert!(codec.consumed() > before, "no progress at eof");
        }
        prop_assert_eq!(codec.consumed() + buf.len() as u64, fed);
    }
}

fn small() -> Limits {
    Limits {
        max_frame_bytes: 64,
        max_labels: 2,
        max_label_bytes: 8,
        max_line_bytes: 32,
        ..Limits::default()
    }
}

#[test]
fn truncated_envelopes_are_unexpected_eof() {
    let cases: &[&[u8]] = &[
        b"a b 0 5\n{}",
        b"a b 1 0\nk 3\nx",
        b"a b 1 0\nk",
        b"a b 1 0\n",
        b"a b 0",
        b"a b 2 1\nk 1\nv",
        b"a",
    ];
    for &input in cases {
        let mut c = FrameCodec::new(Mode::Envelope, Limits::default());
        let mut buf = BytesMut::from(input);
        assert!(c.decode(&mut buf).unwrap().is_none(), "{input:?}");
        let e = c.decode_eof(&mut buf).unwrap_err();
        assert!(
            matches!(
                e.kind,
                FrameErrorKind::Envelope(EnvelopeError::Truncated { .. })
            ),
            "{input:?}: {e}"
        );
        assert!(buf.is_empty());
    }
    // Every proper prefix of a valid frame waits for more, then is truncated at EOF.
    let wire = wire_envelopes(&[Envelope::new("rpc", "call")
        .with_label("rpcID", "1")
        .with_payload(&b"{}"[..])]);
    for cut in 1..wire.len() {
        let mut c = FrameCodec::new(Mode::Envelope, Limits::default());
        let mut buf = BytesMut::from(&wire[..cut]);
        assert!(c.decode(&mut buf).unwrap().is_none(), "cut {cut}");
        assert!(c.decode_eof(&mut buf).is_err(), "cut {cut}");
    }
}

/// Oversize frames are refused from the header alone: only the lines shown are fed,
/// never the payload they announce. A frame over `max_frame_bytes` whose header is
/// well-formed waits to be skipped (`tests/oversize.rs`); the others are errors.
#[test]
fn oversize_refused_before_payload_is_buffered() {
    type Check = Option<fn(&EnvelopeError) -> bool>;
    let skipped: Check = None;
    let cases: &[(&[u8], Check)] = &[
        (b"a b 0 65\n", skipped),
        (
            b"a b 0 18446744073709551615\n",
            Some(|e| matches!(e, EnvelopeError::FrameTooLarge { .. })),
        ),
        (
            b"a b 0 99999999999999999999\n",
            Some(|e| {
                matches!(
                    e,
                    EnvelopeError::ExpectedInteger {
                        reason: "too large",
                        ..
                    }
                )
            }),
        ),
        (
            b"a b 3 0\n",
            Some(|e| matches!(e, EnvelopeError::TooManyLabels { count: 3, max: 2 })),
        ),
        (
            b"a b 1 0\nk 9\n",
            Some(|e| matches!(e, EnvelopeError::LabelTooLarge { len: 9, max: 8, .. })),
        ),
        (b"a b 2 40\nk 8\n12345678j 8\n", skipped),
        (
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            Some(|e| matches!(e, EnvelopeError::LineTooLong { max: 32 })),
        ),
    ];
    for (input, expect) in cases {
        let mut c = FrameCodec::new(Mode::Envelope, small());
        let mut buf = BytesMut::from(*input);
        match c.decode(&mut buf) {
            Err(e) => match &e.kind {
                FrameErrorKind::Envelope(env) => {
                    assert!(expect.is_some_and(|f| f(env)), "{input:?}: {env:?}")
                }
                k => panic!("{k:?}"),
            },
            Ok(None) if expect.is_none() => {
                assert!(buf.is_empty(), "{input:?}: the header is consumed");
            }
            other => panic!("{input:?}: {other:?}"),
        }
        assert!(
            buf.capacity() < 4096,
            "nothing reserved for the announced payload"
        );
    }
}

#[test]
fn oversize_maze_line_is_skipped_to_the_next_line() {
    let mut c = FrameCodec::new(Mode::Maze, small());
    let mut buf = BytesMut::from(&b"1|S|12345678901234567890123456789012345"[..]);
    let e = c.decode(&mut buf).unwrap_err();
    assert_eq!(e.offset, 0);
    assert!(
        matches!(e.kind, FrameErrorKind::Maze(ref m) if m.kind == MazeErrorKind::LineTooLong { max: 32 })
    );
    buf.extend_from_slice(b"6789\n2|B\n");
    let Some(Frame::Maze(MazeLine::Event(ev))) = c.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(ev.seq, 2);
}

#[test]
fn errors_carry_stream_offsets() {
    let mut c = FrameCodec::detect(Limits::default());
    let mut buf = BytesMut::from(&b"command ping 0 0\ncommand ping 0 0\nbad\n"[..]);
    assert!(c.decode(&mut buf).unwrap().is_some());
    assert!(c.decode(&mut buf).unwrap().is_some());
    let e = c.decode(&mut buf).unwrap_err();
    assert_eq!(e.offset, 34);
    assert!(e.to_string().contains("at byte 34"), "{e}");

    let mut c = FrameCodec::new(Mode::Maze, Limits::default());
    let mut buf = BytesMut::from(&b"1|B\r\n2|X\r\n3|B\n"[..]);
    assert!(c.decode(&mut buf).unwrap().is_some());
    let e = c.decode(&mut buf).unwrap_err();
    assert_eq!((e.offset, e.maze_seq()), (5, Some(2)));
    assert!(
        c.decode(&mut buf).unwrap().is_some(),
        "decoding resumes on the next line"
    );
}

#[test]
fn detection_by_first_byte() {
    let frames = feed(FrameCodec::detect(Limits::default()), [&b"2932\r\n"[..]]);
    assert_eq!(frames, vec![Frame::Maze(MazeLine::UserId(2932))]);
    let frames = feed(
        FrameCodec::detect(Limits::default()),
        [&b"command ping 0 0\n"[..]],
    );
    assert!(matches!(&frames[..], [Frame::Envelope(e)] if e.is("command", "ping")));
    let mut c = FrameCodec::detect(Limits::default());
    assert_eq!(c.mode(), Mode::Detect);
    let mut buf = BytesMut::from(&b"7|B\n"[..]);
    c.decode(&mut buf).unwrap();
    assert_eq!(c.mode(), Mode::Maze);
}

#[test]
fn maze_last_line_without_terminator() {
    let frames = as_events(feed(
        FrameCodec::new(Mode::Maze, Limits::default()),
        [&b"1|B\n2|S|4"[..]],
    ));
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].kind, MazeKind::Status { from: 4 });
}

#[test]
fn encoder_writes_crlf_for_maze() {
    let mut c = FrameCodec::detect(Limits::default());
    let mut out = BytesMut::new();
    c.encode(
        Frame::Maze(MazeLine::Event(MazeEvent::new(9, MazeKind::Broadcast))),
        &mut out,
    )
    .unwrap();
    c.encode(Frame::Maze(MazeLine::UserId(12)), &mut out)
        .unwrap();
    c.encode(Frame::Envelope(Envelope::new("state", "alive")), &mut out)
        .unwrap();
    assert_eq!(&out[..], b"9|B\r\n12\r\nstate alive 0 0\n");
}
