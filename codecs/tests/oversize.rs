//! Oversize envelopes are skipped, not buffered, and reported as one
//! `Frame::Oversize` with the labels an answer needs; the frames after them decode as
//! if nothing had happened, however the bytes are split.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use switchyard_codecs::{
    Envelope, EnvelopeError, Frame, FrameCodec, FrameErrorKind, Limits, Mode, Oversize,
};
use tokio_util::codec::{Decoder, Encoder};

mod common;
use common::split_at_points;

const MAX: usize = 200;

fn limits() -> Limits {
    Limits {
        max_frame_bytes: MAX,
        ..Limits::default()
    }
}

fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Frame> {
    let mut codec = FrameCodec::new(Mode::Envelope, limits());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            out.push(f);
        }
        assert!(
            buf.capacity() < 64 * 1024,
            "nothing of an oversize frame is kept"
        );
    }
    while let Some(f) = codec.decode_eof(&mut buf).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty());
    out
}

/// What decoding `envs` must give: each frame over the limit as an `Oversize` with its
/// (short) labels, the rest as themselves.
fn expected(envs: &[Envelope]) -> (Vec<u8>, Vec<Frame>) {
    let mut wire = BytesMut::new();
    let mut frames = Vec::new();
    for e in envs {
        let offset = wire.len() as u64;
        FrameCodec::detect(Limits::default())
            .encode(e, &mut wire)
            .unwrap();
        let size = wire.len() as u64 - offset;
        frames.push(if size > MAX as u64 {
            Frame::Oversize(Oversize {
                channel: e.channel.to_string(),
                subject: e.subject.to_string(),
                labels: e.labels.clone(),
                size,
                max: MAX,
                offset,
            })
        } else {
            Frame::Envelope(e.clone())
        });
    }
    (wire.to_vec(), frames)
}

fn envelope() -> impl Strategy<Value = Envelope> {
    let token = "[a-zA-Z:_.-]{1,12}";
    (
        token,
        token,
        proptest::collection::vec((token, proptest::collection::vec(any::<u8>(), 0..80)), 0..5),
        proptest::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(ch, subj, labels, payload)| {
            let mut e = Envelope::new(ch, subj).with_payload(payload);
            for (n, v) in labels {
                e.labels.insert(n, v);
            }
            e
        })
}

proptest! {
    #[test]
    fn oversize_frames_among_others_whole_bytewise_and_split(
        envs in proptest::collection::vec(envelope(), 1..8),
        points in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let (wire, want) = expected(&envs);
        prop_assert_eq!(&feed([&wire[..]]), &want);
        prop_assert_eq!(&feed(wire.chunks(1)), &want);
        let chunks = split_at_points(&wire, points);
        prop_assert_eq!(&feed(chunks), &want);
    }
}

#[test]
fn a_huge_payload_streams_past_in_bounded_memory() {
    let head = b"topic publish 2 10000000\nid 2\nq7topic 6\norders";
    let next = b"command ping 0 0\n";
    let mut chunks: Vec<&[u8]> = vec![head];
    let block = vec![b'x'; 50_000];
    for _ in 0..200 {
        chunks.push(&block);
    }
    chunks.push(next);
    let frames = feed(chunks);
    assert_eq!(frames.len(), 2, "{frames:?}");
    let Frame::Oversize(o) = &frames[0] else {
        panic!("{:?}", frames[0])
    };
    assert_eq!(
        (
            o.channel.as_str(),
            o.subject.as_str(),
            o.labels.get_str("id")
        ),
        ("topic", "publish", Some("q7"))
    );
    assert_eq!(o.labels.get_str("topic"), Some("orders"));
    assert_eq!(o.size, head.len() as u64 + 10_000_000);
    assert!(matches!(&frames[1], Frame::Envelope(e) if e.is("command", "ping")));
}

#[test]
fn a_long_label_value_is_skipped_not_kept() {
    let mut wire = b"rpc call 2 0\nrpcID 1\n9big 300\n".to_vec();
    wire.extend_from_slice(&[b'v'; 300]);
    let Frame::Oversize(o) = &feed([&wire[..]])[0] else {
        panic!()
    };
    assert_eq!(o.labels.get_str("rpcID"), Some("9"));
    assert_eq!(o.labels.get("big"), None, "over 256 bytes: not kept");
}

#[test]
fn broken_or_truncated_oversize_frames_are_errors() {
    // A bad label line inside the skipped frame: the stream is lost.
    let mut c = FrameCodec::new(Mode::Envelope, limits());
    let mut buf = BytesMut::from(&b"a b 2 500\nk 1\nvnot-a-label-line\n"[..]);
    let e = c.decode(&mut buf).unwrap_err();
    assert!(
        matches!(
            e.kind,
            FrameErrorKind::Envelope(EnvelopeError::LabelLine { .. })
        ),
        "{e}"
    );
    assert_eq!(e.offset, 15, "the offset of the bad line");
    // The connection ends in the middle of one.
    let mut c = FrameCodec::new(Mode::Envelope, limits());
    let mut buf = BytesMut::from(&b"a b 0 500\nxxxx"[..]);
    assert!(c.decode(&mut buf).unwrap().is_none());
    let e = c.decode_eof(&mut buf).unwrap_err();
    assert!(
        matches!(
            e.kind,
            FrameErrorKind::Envelope(EnvelopeError::Truncated { missing: 496 })
        ),
        "{e}"
    );
}

#[test]
fn frames_past_max_skip_bytes_and_long_labels_are_still_errors() {
    let limits = Limits {
        max_frame_bytes: MAX,
        max_skip_bytes: 1000,
        max_label_bytes: 300,
        ..Limits::default()
    };
    for (input, want) in [
        // Announced past max_skip_bytes by the header, or by a label line.
        (&b"a b 0 1000\n"[..], "frame of at least 1011 bytes"),
        (&b"a b 1 0\nk 299\n"[..], ""),
        (&b"a b 2 900\nk 299\n"[..], "frame of at least"),
        // A label over max_label_bytes inside a skipped frame.
        (&b"a b 2 300\nk 1\nvbig 301\n"[..], "label big is 301 bytes"),
    ] {
        let mut c = FrameCodec::new(Mode::Envelope, limits);
        let mut buf = BytesMut::from(input);
        match c.decode(&mut buf) {
            Err(e) if !want.is_empty() => assert!(e.to_string().contains(want), "{e}"),
            Ok(None) if want.is_empty() => {}
            other => panic!("{input:?}: {other:?}"),
        }
    }
}
