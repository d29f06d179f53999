//! The broker-wide memory budget (`broker.memory_limit_bytes`) over real TCP: many
//! partial large frames, subscribers that never read, and an SSE client that never
//! reads, against a small budget. Checked with the budget's own counters (RSS belongs
//! in benchmarks), and with a bystander whose ping must still be answered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use switchyard::{Broker, Config};
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::Decoder;

mod common;
use common::{ping, topic_env, Log, ALIVE};

const MIB: u64 = 1 << 20;
const LIMIT: u64 = 8 * MIB;

fn config(dir: &Path, broker: &str, rest: &str) -> Config {
    Config::parse(
        &format!(
            "[broker]\nbind = \"127.0.0.1:0\"\nmemory_limit_bytes = {LIMIT}\nmax_frame_bytes = 2097152\noutput_buffer_bytes = 2097152\n{broker}\n[storage]\ndir = \"{}\"\nfsync = \"never\"\n{rest}\n[shutdown]\ngrace_ms = 1000\n",
            dir.display()
        ),
        "test",
    )
    .unwrap()
}

/// A client whose socket takes little from the broker before the broker's output
/// backs up (a peer that never reads is then felt within a few KiB, not megabytes).
async fn stingy(addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(addr).await.unwrap()
}

/// Waits until `f` holds, polling, up to `secs`.
async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads envelopes (frames up to 2 MiB).
struct Reader {
    s: TcpStream,
    codec: FrameCodec,
    buf: BytesMut,
}

impl Reader {
    fn new(s: TcpStream) -> Reader {
        let limits = Limits {
            max_frame_bytes: 4 << 20,
            ..Limits::default()
        };
        Reader {
            s,
            codec: FrameCodec::detect(limits),
            buf: BytesMut::new(),
        }
    }

    async fn next(&mut self) -> Envelope {
        loop {
            if let Some(Frame::Envelope(e)) = self.codec.decode(&mut self.buf).unwrap() {
                return e;
            }
            let n = tokio::time::timeout(Duration::from_secs(30), self.s.read_buf(&mut self.buf))
                .await
                .expect("an envelope in time")
                .unwrap();
            assert!(n > 0, "connection closed");
        }
    }
}

/// Publishes `n` records of `size` bytes to `topic` (one partition) and waits for the acks.
async fn fill_topic(addr: SocketAddr, topic: &str, n: usize, size: usize) {
    let mut c = Reader::new(TcpStream::connect(addr).await.unwrap());
    c.s.write_all(&topic_env(
        "create",
        &[("topic", topic), ("partitions", "1")],
        b"",
    ))
    .await
    .unwrap();
    assert!(c.next().await.is("topic", "created"));
    let value = vec![b'v'; size];
    for i in 0..n {
        c.s.write_all(&topic_env(
            "publish",
            &[("topic", topic), ("id", &i.to_string())],
            &value,
        ))
        .await
        .unwrap();
        let ack = c.next().await;
        assert!(ack.is("topic", "ack"), "{ack:?}");
    }
}

fn snapshot(b: &Broker) -> switchyard_actors::stats::StatsSnapshot {
    b.stats().snapshot()
}

#[actix_rt::test]
async fn partial_large_frames_are_held_within_the_budget_and_complete_when_it_frees() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "", ""))
        .await
        .unwrap();
    let addr = b.local_addr();
    // 24 clients each announce a 1 MiB ping and send all of it but its last byte:
    // 24 MiB of partial frames against an 8 MiB budget.
    let clients = 24;
    let size = MIB as usize;
    let head = format!("command ping 0 {size}\n").into_bytes();
    let mut writers = Vec::new();
    for _ in 0..clients {
        let s = TcpStream::connect(addr).await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let head = head.clone();
        writers.push((
            tx,
            actix_rt::spawn(async move {
                wr.write_all(&head).await.unwrap();
                wr.write_all(&vec![b'p'; size - 1]).await.unwrap();
                // The last byte once the test says so: the frame completes.
                rx.await.unwrap();
                wr.write_all(b"p").await.unwrap();
                let mut got = [0u8; ALIVE.len()];
                rd.read_exact(&mut got).await.unwrap();
                assert_eq!(&got, ALIVE);
                wr
            }),
        ));
    }
    until("connections paused for the budget", 30, || {
        snapshot(&b).memory_read_pauses > 0
    })
    .await;
    // Whatever the partial frames hold, a small request is still read and answered.
    let mut bystander = TcpStream::connect(addr).await.unwrap();
    ping(&mut bystander).await;
    // Wait for the broker to have read what it may, then check the bound: the limit,
    // plus the 64 KiB every connection may hold whatever the budget says.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = snapshot(&b);
    let bound = LIMIT + (clients as u64 + 1) * (64 << 10);
    assert_eq!(s.memory_limit_bytes, LIMIT);
    assert!(
        s.memory_peak_bytes <= bound,
        "peak {} over {bound}",
        s.memory_peak_bytes
    );
    assert!(
        s.memory_in_use_bytes > LIMIT / 2,
        "the partial frames are charged: {}",
        s.memory_in_use_bytes
    );
    assert_eq!(s.memory_shed, 0, "input is paced, never shed");
    // Every frame completes: those holding room finish and free it for the paused.
    let mut tasks = Vec::new();
    for (tx, task) in writers {
        tx.send(()).unwrap();
        tasks.push(task);
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("every partial frame completes and is answered")
            .unwrap();
    }
    let s = snapshot(&b);
    assert!(
        s.memory_peak_bytes <= bound,
        "peak {} over {bound}",
        s.memory_peak_bytes
    );
    until("the read buffers released", 10, || {
        snapshot(&b).memory_in_use_bytes <= (clients as u64 + 1) * (64 << 10)
    })
    .await;
    ping(&mut bystander).await;
}

#[actix_rt::test]
async fn subscribers_that_never_read_stay_within_the_budget_and_stall_nobody() {
    let (log, _guard) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "", ""))
        .await
        .unwrap();
    let addr = b.local_addr();
    // 24 MiB of 512 KiB records: each subscriber could be sent three times the budget.
    let (records, size) = (48, 512 << 10);
    fill_topic(addr, "big", records, size).await;
    let mut idle = Vec::new();
    for i in 0..100 {
        let mut s = stingy(addr).await;
        s.write_all(&topic_env(
            "subscribe",
            &[
                ("topic", "big"),
                ("from", "earliest"),
                ("sub", &format!("s{i}")),
            ],
            b"",
        ))
        .await
        .unwrap();
        idle.push(s);
    }
    // A bystander is answered at once while the non-readers are fed, paced and shed.
    let mut bystander = TcpStream::connect(addr).await.unwrap();
    for _ in 0..20 {
        ping(&mut bystander).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A subscriber that reads gets every record: the non-readers do not starve it.
    let mut reader = Reader::new(TcpStream::connect(addr).await.unwrap());
    reader
        .s
        .write_all(&topic_env(
            "subscribe",
            &[("topic", "big"), ("from", "earliest"), ("sub", "r")],
            b"",
        ))
        .await
        .unwrap();
    let mut next = 0u64;
    while next < records as u64 {
        let e = reader.next().await;
        if e.is("topic", "deliver") {
            assert_eq!(e.labels.get_str("offset"), Some(next.to_string().as_str()));
            assert_eq!(e.payload.len(), size);
            next += 1;
        }
    }
    ping(&mut bystander).await;
    let s = snapshot(&b);
    println!("{s:?}");
    // One read past the limit at most (a partition checks for room before it reads).
    let bound = LIMIT + 2 * MIB;
    assert!(
        s.memory_peak_bytes <= bound,
        "peak {} over {bound}",
        s.memory_peak_bytes
    );
    assert!(
        s.memory_peak_bytes >= LIMIT / 2,
        "the budget was used: {}",
        s.memory_peak_bytes
    );
    assert!(s.memory_shed > 0, "the largest holders were shed");
    log.wait_for(&["slow consumer: memory budget full"]).await;
    drop(idle);
    until("the output released", 10, || {
        snapshot(&b).memory_output_bytes == 0
    })
    .await;
}

#[actix_rt::test]
async fn an_sse_client_that_never_reads_holds_at_most_its_stream_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let stream_buffer = 2 * MIB;
    let b = switchyard::start(&config(
        dir.path(),
        "",
        &format!("[gateway]\nhttp_bind = \"127.0.0.1:0\"\nstream_buffer_bytes = {stream_buffer}"),
    ))
    .await
    .unwrap();
    let http = b.gateway().http.unwrap();
    // 16 records of 1 MB: today's 256-record window would hold all of them.
    let (records, size) = (16, 1_000_000);
    fill_topic(b.local_addr(), "sse", records, size).await;
    let mut s = stingy(http).await;
    s.write_all(b"GET /v1/topics/sse/stream?from=earliest HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    until("records held for the stream", 10, || {
        snapshot(&b).stream_buffer_peak_bytes > 0
    })
    .await;
    // Give the broker every chance to read ahead, then check what it held.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bound = stream_buffer + size as u64 + 4096;
    let s1 = snapshot(&b);
    assert!(
        s1.stream_buffer_peak_bytes <= bound,
        "a non-reading stream held {} (bound {bound})",
        s1.stream_buffer_peak_bytes
    );
    // Paced, not cut off: once it reads, every record arrives.
    const EVENT: &[u8] = b"event: record\n";
    let (mut seen, mut tail) = (0, Vec::new());
    let mut buf = vec![0u8; 1 << 20];
    while seen < records {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("records in time")
            .unwrap();
        assert!(n > 0, "stream closed");
        // Count in what is new (and the few bytes before it an event line may span).
        tail.extend_from_slice(&buf[..n]);
        seen += tail.windows(EVENT.len()).filter(|w| *w == EVENT).count();
        tail.drain(..tail.len().saturating_sub(EVENT.len() - 1));
    }
    println!(
        "stream peak {} bytes",
        snapshot(&b).stream_buffer_peak_bytes
    );
    let s2 = snapshot(&b);
    assert!(
        s2.stream_buffer_peak_bytes <= bound,
        "peak {}",
        s2.stream_buffer_peak_bytes
    );
    let metrics = common::http::get(http, "/metrics").await.text();
    assert!(
        metrics.contains("switchyard_stream_buffer_peak_bytes "),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("switchyard_memory_limit_bytes {LIMIT}")),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn a_grpc_stream_that_is_not_read_holds_at_most_its_stream_buffer() {
    use switchyard_actors::gateway::pb::broker_client::BrokerClient;
    use switchyard_actors::gateway::pb::SubscribeRequest;
    let dir = tempfile::tempdir().unwrap();
    let stream_buffer = 2 * MIB;
    let b = switchyard::start(&config(
        dir.path(),
        "",
        &format!("[gateway]\ngrpc_bind = \"127.0.0.1:0\"\nstream_buffer_bytes = {stream_buffer}"),
    ))
    .await
    .unwrap();
    let (records, size) = (16, 1_000_000);
    fill_topic(b.local_addr(), "rpc", records, size).await;
    let mut client = BrokerClient::connect(format!("http://{}", b.gateway().grpc.unwrap()))
        .await
        .unwrap()
        .max_decoding_message_size(4 << 20);
    let mut stream = client
        .subscribe(SubscribeRequest {
            topic: "rpc".into(),
            partition: None,
            from: "earliest".into(),
            group: None,
            after: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    // Not read: HTTP/2 flow control stops the server, and the broker stops reading.
    until("records held for the stream", 10, || {
        snapshot(&b).stream_buffer_peak_bytes > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bound = stream_buffer + size as u64 + 4096;
    let peak = snapshot(&b).stream_buffer_peak_bytes;
    assert!(
        peak <= bound,
        "a stream not read held {peak} (bound {bound})"
    );
    for want in 0..records as u64 {
        let r = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("a record in time")
            .unwrap()
            .expect("the stream goes on");
        assert_eq!((r.offset, r.value.len()), (want, size));
    }
    let peak = snapshot(&b).stream_buffer_peak_bytes;
    assert!(peak <= bound, "peak {peak}");
}
