//! Idle connections cost little: the read buffer grows with the traffic and is given
//! back when the connection goes quiet; `bench idle` runs (a smoke test at a small N).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use switchyard::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `read_buffer=N` of the connection whose client end is `peer`, from the tree.
fn read_buffer(b: &Broker, peer: SocketAddr) -> Option<usize> {
    let tree = b.tree().render();
    let line = tree
        .lines()
        .find(|l| l.contains(&format!("connection:{peer} ")))?;
    let at = line.find("read_buffer=")? + "read_buffer=".len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

async fn wait_read_buffer(
    b: &Broker,
    peer: SocketAddr,
    what: &str,
    f: impl Fn(usize) -> bool,
) -> usize {
    eventually(what, || read_buffer(b, peer).is_some_and(&f)).await;
    read_buffer(b, peer).unwrap()
}

fn gauge(b: &Broker) -> u64 {
    b.stats().snapshot().read_buffer_bytes
}

#[actix_rt::test]
async fn the_read_buffer_grows_with_a_large_frame_and_goes_when_the_connection_is_quiet() {
    let b =
        start("buffer_release_ms = 500\nmax_frame_bytes = 4194304\noutput_buffer_bytes = 4194304")
            .await;
    let mut c = connect(b.local_addr()).await;
    let peer = c.local_addr().unwrap();
    // Connected, nothing sent: no buffer.
    wait_read_buffer(&b, peer, "the connection in the tree", |n| n == 0).await;
    assert_eq!(gauge(&b), 0);

    ping(&mut c).await;
    let small = wait_read_buffer(&b, peer, "a small buffer after a ping", |n| n > 0).await;
    assert_eq!(small, switchyard_actors::connection::MIN_READ);
    assert_eq!(gauge(&b), small as u64);

    // A 1 MiB ping: reads bring more than the buffer holds, so it grows.
    let payload = vec![b'x'; 1 << 20];
    let mut big = format!("command ping 0 {}\n", payload.len()).into_bytes();
    big.extend_from_slice(&payload);
    c.write_all(&big).await.unwrap();
    let mut alive = [0u8; ALIVE.len()];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut alive))
        .await
        .expect("the large ping answered")
        .unwrap();
    assert_eq!(&alive, ALIVE);
    let grown = read_buffer(&b, peer).unwrap();
    assert!(
        grown > small,
        "read_buffer={grown} after 1 MiB, {small} before"
    );
    assert!(
        grown <= switchyard_actors::connection::READ_CHUNK,
        "{grown}"
    );
    assert_eq!(gauge(&b), grown as u64);

    // Quiet for buffer_release_ms: the buffer is given back, and its budget charge.
    wait_read_buffer(&b, peer, "the buffer released", |n| n == 0).await;
    assert_eq!(gauge(&b), 0);
    eventually("no memory charged", || {
        b.stats().snapshot().memory_in_use_bytes == 0
    })
    .await;

    // It starts small again.
    ping(&mut c).await;
    let again = wait_read_buffer(&b, peer, "a small buffer again", |n| n > 0).await;
    assert_eq!(again, small);

    drop(c);
    eventually("a closed connection leaves the sum", || gauge(&b) == 0).await;
}

#[actix_rt::test]
async fn bench_idle_runs_at_a_small_n() {
    let b = start("buffer_release_ms = 100").await;
    let to = switchyard::client::Target::from(b.local_addr());
    let o = switchyard::bench::idle::Options {
        connections: 50,
        pings: 200,
        broker_pid: Some(std::process::id()),
        settle: Duration::from_millis(400),
    };
    let run = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let r = switchyard::bench::idle::run(&to, &o, &mut out);
        (r, String::from_utf8(out).unwrap())
    });
    // The broker runs on this thread: wait without blocking it.
    let (report, text) = run.await.unwrap();
    let report = report.unwrap_or_else(|e| panic!("bench idle failed: {e}\n{text}"));
    assert_eq!(report.connections, 50, "{text}");
    assert_eq!(report.among.calls, 200, "{text}");
    assert_eq!(report.among.latency.count(), 200, "{text}");
    // The broker shares this process with the test: only a rough bound.
    let per = report.bytes_per_connection().expect("an rss figure");
    assert!(per.abs() < 1e6, "{per} bytes per connection\n{text}");
    assert!(text.contains("rss per idle connection: "), "{text}");
    assert!(text.contains("broker ping among 50: p50 "), "{text}");
    eventually("every bench connection closed", || {
        b.stats().snapshot().connections_open == 0
    })
    .await;
    assert_eq!(gauge(&b), 0);
}
