//! A subscriber that grants 10^9 credit and reads at a tenth of the publish rate is
//! paced, never cut off: every record arrives in order, and what the broker holds for
//! it stays near half of `output_buffer_bytes`, whatever the credit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::BytesMut;
use switchyard_codecs::{Frame, FrameCodec, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

mod common;
use common::topic_env;

const OUTPUT: u64 = 1 << 20;

#[actix_rt::test]
async fn a_slow_reader_with_unlimited_credit_is_paced_not_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[broker]\nbind = \"127.0.0.1:0\"\noutput_buffer_bytes = {OUTPUT}\nmemory_limit_bytes = {}\n\
         [storage]\ndir = \"{}\"\nfsync = \"never\"\n[[topic]]\nname = \"slow\"\npartitions = 1\n[shutdown]\ngrace_ms = 1000\n",
        16 << 20,
        dir.path().display()
    );
    let b = switchyard::start(&switchyard::Config::parse(&text, "test").unwrap())
        .await
        .unwrap();
    let addr = b.local_addr();
    let (records, size) = (4000u64, 1024usize);

    let mut sub = TcpStream::connect(addr).await.unwrap();
    sub.write_all(&topic_env(
        "subscribe",
        &[
            ("topic", "slow"),
            ("credit", "1000000000"),
            ("sub", "s"),
            ("id", "1"),
        ],
        b"",
    ))
    .await
    .unwrap();

    // The producer: every record its own publish without id, as fast as TCP takes them.
    let producer = tokio::spawn(async move {
        let mut p = TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        for i in 0..records {
            let mut v = format!("{i:08}").into_bytes();
            v.resize(size, b'.');
            out.extend_from_slice(&topic_env("publish", &[("topic", "slow")], &v));
        }
        let t = std::time::Instant::now();
        p.write_all(&out).await.unwrap();
        p.write_all(&topic_env(
            "publish",
            &[("topic", "slow"), ("id", "end")],
            b"end",
        ))
        .await
        .unwrap();
        let mut buf = [0u8; 256];
        let n = p.read(&mut buf).await.unwrap();
        assert!(
            n > 0 && buf[..n].starts_with(b"topic ack"),
            "{:?}",
            &buf[..n]
        );
        t.elapsed()
    });

    // The reader: 16 KiB every 10 ms (about 1.6 MB/s).
    let mut codec = FrameCodec::detect(Limits::default());
    let (mut buf, mut next) = (BytesMut::new(), 0u64);
    let started = std::time::Instant::now();
    let mut chunk = vec![0u8; 16 << 10];
    while next < records {
        while next < records {
            let Some(f) = codec.decode(&mut buf).unwrap() else {
                break;
            };
            let Frame::Envelope(e) = f else { continue };
            if !e.is("topic", "deliver") {
                assert!(e.is("topic", "subscribed"), "{e:?}");
                continue;
            }
            assert_eq!(e.labels.get_str("offset"), Some(next.to_string().as_str()));
            assert_eq!(&e.payload[..8], format!("{next:08}").as_bytes());
            next += 1;
        }
        if next == records {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let n = tokio::time::timeout(Duration::from_secs(10), sub.read(&mut chunk))
            .await
            .expect("deliveries keep coming")
            .unwrap();
        assert!(n > 0, "the broker closed the slow reader");
        buf.extend_from_slice(&chunk[..n]);
    }
    let read_for = started.elapsed();
    let published_in = producer.await.unwrap();
    println!("published in {published_in:?}, read in {read_for:?}");
    assert!(
        read_for > published_in * 5,
        "the reader was slower than the producer ({read_for:?} vs {published_in:?})"
    );
    let s = b.stats().snapshot();
    assert_eq!(s.slow_consumer_disconnects, 0);
    // Half the output buffer, plus one read of records (256 KiB) and a turn's frames.
    let bound = OUTPUT / 2 + (256 << 10) + (64 << 10);
    assert!(
        s.output_peak_bytes <= bound,
        "held {} for the slow reader (bound {bound})",
        s.output_peak_bytes
    );
    b.run_until(async {}).await;
}
