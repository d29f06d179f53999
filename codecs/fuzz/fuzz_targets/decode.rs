//! Arbitrary bytes, in every mode and with small limits, must never panic the decoder,
//! and every error must consume input (no endless loop on a bad frame).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard_codecs::{FrameCodec, Limits, Mode};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let mode = match sel % 3 {
        0 => Mode::Detect,
        1 => Mode::Maze,
        _ => Mode::Envelope,
    };
    let limits = Limits { max_frame_bytes: 512, max_labels: 4, max_label_bytes: 128, max_line_bytes: 64, max_skip_bytes: 4096 };
    let mut codec = FrameCodec::new(mode, limits);
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(usize::from(sel / 3).max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            let before = codec.consumed();
            match codec.decode(&mut buf) {
                Ok(None) => break,
                _ => assert!(codec.consumed() > before),
            }
        }
    }
    while !buf.is_empty() {
        let before = codec.consumed();
        if let Ok(None) = codec.decode_eof(&mut buf) {
            break;
        }
        assert!(codec.consumed() > before);
    }
});
