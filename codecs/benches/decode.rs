//! Decode throughput for both formats: MB/s and frames/s.
//!
//! `cargo bench -p switchyard-codecs --bench decode`

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use switchyard_codecs::{Envelope, FrameCodec, Limits, MazeEvent, MazeKind, Mode};
use tokio_util::codec::Decoder;

const FRAMES: usize = 10_000;

fn maze_stream() -> Vec<u8> {
    let mut out = BytesMut::new();
    for i in 0..FRAMES as u64 {
        let kind = match i % 20 {
            0..=2 => MazeKind::Follow {
                from: i % 997,
                to: i % 991,
            },
            3..=5 => MazeKind::Unfollow {
                from: i % 997,
                to: i % 991,
            },
            6..=8 => MazeKind::Private {
                from: i % 997,
                to: i % 991,
            },
            _ => MazeKind::Status { from: i % 997 },
        };
        MazeEvent::new(i + 1, kind).encode(&mut out);
    }
    out.to_vec()
}

fn envelope_stream() -> Vec<u8> {
    let mut out = BytesMut::new();
    for i in 0..FRAMES {
        Envelope::new("rpc", "call")
            .with_label("rpcID", i.to_string())
            .with_label("feature", "driver:crypto")
            .with_label("method", "decrypt")
            .with_label("caller", "driver:conf")
            .with_payload(vec![b'x'; 128])
            .encode(&mut out)
            .unwrap_or_default();
    }
    out.to_vec()
}

fn decode_all(mode: Mode, wire: &[u8]) -> usize {
    let mut codec = FrameCodec::new(mode, Limits::default());
    let mut buf = BytesMut::from(wire);
    let mut n = 0;
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        black_box(frame);
        n += 1;
    }
    assert_eq!(n, FRAMES);
    n
}

fn bench(c: &mut Criterion) {
    for (name, mode, wire) in [
        ("maze", Mode::Maze, maze_stream()),
        ("envelope", Mode::Envelope, envelope_stream()),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function("decode bytes", |b| b.iter(|| decode_all(mode, &wire)));
        group.throughput(Throughput::Elements(FRAMES as u64));
        group.bench_function("decode frames", |b| b.iter(|| decode_all(mode, &wire)));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
