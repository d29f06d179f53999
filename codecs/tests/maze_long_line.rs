//! A maze line over `max_line_bytes` costs only itself: the lines after it decode
//! whatever the read boundaries, and its sequence number is reported when it can be
//! read, so the router can use it up instead of waiting for it for ever.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use switchyard_codecs::{
    Frame, FrameCodec, FrameError, FrameErrorKind, Limits, MazeErrorKind, MazeLine, Mode,
};
use tokio_util::codec::Decoder;

mod common;
use common::split_at_points;

/// What a decoder yields: an event's number, or a too-long line with the number it had.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Event(u64),
    TooLong(Option<u64>),
}

fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Got> {
    let mut codec = FrameCodec::new(Mode::Maze, Limits::default());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let take = |r: Result<Option<Frame>, FrameError>, out: &mut Vec<Got>| match r {
        Ok(Some(Frame::Maze(MazeLine::Event(e)))) => {
            out.push(Got::Event(e.seq));
            true
        }
        Ok(None) => false,
        Ok(Some(other)) => panic!("{other:?}"),
        Err(e) => match e.kind {
            FrameErrorKind::Maze(m) if matches!(m.kind, MazeErrorKind::LineTooLong { .. }) => {
                out.push(Got::TooLong(m.seq));
                true
            }
            other => panic!("{other:?}"),
        },
    };
    let mut fed = 0;
    for chunk in chunks {
        fed += chunk.len() as u64;
        buf.extend_from_slice(chunk);
        while take(codec.decode(&mut buf), &mut out) {}
    }
    while take(codec.decode_eof(&mut buf), &mut out) {}
    assert!(buf.is_empty());
    assert_eq!(codec.consumed(), fed);
    out
}

/// The probe's input: `1|B`, 5,000 `A` with no number, then `2|B` and `3|B`.
fn probe() -> Vec<u8> {
    let mut wire = b"1|B\n".to_vec();
    wire.extend(std::iter::repeat_n(b'A', 5000));
    wire.extend_from_slice(b"\n2|B\n3|B\n");
    wire
}

/// The same with a readable number on the long line: `2|P|1|2AAAA…`.
fn numbered() -> Vec<u8> {
    let mut wire = b"1|B\n2|P|1|2".to_vec();
    wire.extend(std::iter::repeat_n(b'A', 5000));
    wire.extend_from_slice(b"\r\n3|B\n4|B\n");
    wire
}

fn cases() -> [(Vec<u8>, Vec<Got>); 2] {
    [
        (
            probe(),
            vec![
                Got::Event(1),
                Got::TooLong(None),
                Got::Event(2),
                Got::Event(3),
            ],
        ),
        (
            numbered(),
            vec![
                Got::Event(1),
                Got::TooLong(Some(2)),
                Got::Event(3),
                Got::Event(4),
            ],
        ),
    ]
}

#[test]
fn long_line_fed_whole() {
    for (wire, want) in cases() {
        assert_eq!(feed([&wire[..]]), want);
    }
}

#[test]
fn long_line_fed_byte_by_byte() {
    for (wire, want) in cases() {
        assert_eq!(feed(wire.chunks(1)), want);
    }
}

#[test]
fn long_line_split_around_the_limit_and_its_end() {
    for (wire, want) in cases() {
        let end = wire.iter().rposition(|&b| b == b'A').unwrap();
        for at in [
            1,
            4,
            5,
            4095,
            4096,
            4100,
            4101,
            end,
            end + 1,
            end + 2,
            end + 3,
        ] {
            assert_eq!(
                feed(split_at_points(&wire, vec![at])),
                want,
                "split at {at}"
            );
        }
    }
}

proptest! {
    #[test]
    fn long_line_split_anywhere(points in proptest::collection::vec(any::<usize>(), 0..8)) {
        for (wire, want) in cases() {
            prop_assert_eq!(feed(split_at_points(&wire, points.clone())), want);
        }
    }
}
