//! An over-long line on the event-source port costs only itself: the events after it
//! in the same write are delivered, and its sequence number is used up when it can be
//! read. Before, the rest of the read went with it and the stream waited for ever.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Log;
use switchyard::{Broker, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start() -> Broker {
    let text = "[broker]\nbind = \"127.0.0.1:0\"\n[maze]\nevent_bind = \"127.0.0.1:0\"\n\
                client_bind = \"127.0.0.1:0\"\n[shutdown]\ngrace_ms = 1000\n";
    switchyard::start(&Config::parse(text, "test").unwrap())
        .await
        .unwrap()
}

/// A user client, registered with the router before this returns.
async fn client(b: &Broker, user: u64) -> TcpStream {
    let before = b.maze_status().await.unwrap().sessions;
    let mut c = TcpStream::connect(b.maze().unwrap().client_addr)
        .await
        .unwrap();
    c.write_all(format!("{user}\r\n").as_bytes()).await.unwrap();
    for _ in 0..1000 {
        if b.maze_status().await.unwrap().sessions > before {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("user {user} never registered");
}

/// Reads exactly `lines`, each as `line\r\n`.
async fn expect(c: &mut TcpStream, lines: &[&str]) {
    let want: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut got))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {lines:?}"))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[actix_rt::test]
async fn an_over_long_line_in_one_write_does_not_stall_the_stream() {
    let (log, _g) = Log::capture();
    let b = start().await;
    let mut c = client(&b, 1).await;
    let mut s = TcpStream::connect(b.maze().unwrap().event_addr)
        .await
        .unwrap();
    // The probe's exact input, in one write.
    let mut wire = b"1|B\n".to_vec();
    wire.extend(std::iter::repeat_n(b'A', 5000));
    wire.extend_from_slice(b"\n2|B\n3|B\n");
    s.write_all(&wire).await.unwrap();
    expect(&mut c, &["1|B", "2|B", "3|B"]).await;
    // A long line whose number can be read: 4 is used up, 5 and 6 follow.
    let mut wire = b"4|P|9|1".to_vec();
    wire.extend(std::iter::repeat_n(b'7', 5000));
    wire.extend_from_slice(b"\n5|B\n6|P|2|1\n");
    s.write_all(&wire).await.unwrap();
    expect(&mut c, &["5|B", "6|P|2|1"]).await;
    let line = log
        .wait_for(&["sequence number is consumed as a no-op", "seq=4"])
        .await;
    assert!(line.contains("line longer than"), "{line}");
    assert_eq!(b.maze_status().await.unwrap().next_seq, 7);
}

/// A flood of malformed lines is counted whole but logged a line a second after the
/// first few (500 over-long lines once wrote 500 warnings).
#[actix_rt::test]
async fn malformed_lines_are_logged_a_few_then_once_a_second() {
    let (log, _g) = Log::capture();
    let b = start().await;
    let mut c = client(&b, 9).await;
    let mut s = TcpStream::connect(b.maze().unwrap().event_addr)
        .await
        .unwrap();
    let mut input = Vec::new();
    for _ in 0..500 {
        input.extend_from_slice(b"x|B\n");
    }
    input.extend_from_slice(b"1|B\n");
    s.write_all(&input).await.unwrap();
    expect(&mut c, &["1|B"]).await;
    let lines = log.text().matches("not an event line").count()
        + log.text().matches("malformed event").count();
    assert!((1..=20).contains(&lines), "{lines} lines for 500 malformed");
    assert!(b.stats().snapshot().malformed_frames >= 500);
}
