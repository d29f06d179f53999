//! The follower maze over real TCP, the broker in-process on port 0: every rule of the
//! spec, and one test per go-eventserver bug that fails on that bug.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Log;
use switchyard::{Broker, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn maze_config(broker_extra: &str, maze_extra: &str) -> Config {
    Config::parse(
        &format!(
            "[broker]\nbind = \"127.0.0.1:0\"\n{broker_extra}\n[maze]\nevent_bind = \"127.0.0.1:0\"\nclient_bind = \"127.0.0.1:0\"\n{maze_extra}\n[shutdown]\ngrace_ms = 1000\n"
        ),
        "test",
    )
    .unwrap()
}

async fn start(maze_extra: &str) -> Broker {
    switchyard::start(&maze_config("", maze_extra))
        .await
        .unwrap()
}

async fn sessions(b: &Broker) -> usize {
    b.maze_status().await.unwrap().sessions
}

/// A user client, registered with the router before this returns.
async fn client(b: &Broker, user: u64) -> TcpStream {
    let before = sessions(b).await;
    let mut c = TcpStream::connect(b.maze().unwrap().client_addr)
        .await
        .unwrap();
    c.write_all(format!("{user}\r\n").as_bytes()).await.unwrap();
    for _ in 0..500 {
        if sessions(b).await > before {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("user {user} never registered");
}

async fn source(b: &Broker) -> TcpStream {
    TcpStream::connect(b.maze().unwrap().event_addr)
        .await
        .unwrap()
}

/// Reads exactly `lines` (each sent as `line\r\n`), then checks nothing else is there.
async fn expect(c: &mut TcpStream, lines: &[&str]) {
    let want: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut got))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {lines:?}"))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
    expect_nothing(c).await;
}

async fn expect_nothing(c: &mut TcpStream) {
    let mut extra = [0u8; 64];
    match tokio::time::timeout(Duration::from_millis(100), c.read(&mut extra)).await {
        Err(_) => {}
        Ok(Ok(n)) => panic!("unexpected {:?}", String::from_utf8_lossy(&extra[..n])),
        Ok(Err(e)) => panic!("read error {e}"),
    }
}

async fn wait_next_seq(b: &Broker, seq: u64) {
    for _ in 0..500 {
        if b.maze_status().await.unwrap().next_seq == seq {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("next_seq never reached {seq}: {:?}", b.maze_status().await);
}

async fn closed(c: &mut TcpStream) -> bool {
    common::closed_by_peer(c).await
}

#[actix_rt::test]
async fn every_event_type_in_sequence_order_from_shuffled_input() {
    let b = start("").await;
    let mut c1 = client(&b, 1).await;
    let mut c2 = client(&b, 2).await;
    let mut c3 = client(&b, 3).await;
    let mut s = source(&b).await;
    // Shuffled, LF and CRLF mixed.
    s.write_all(b"5|B\r\n3|S|2\n1|F|1|2\r\n8|P|9|3\n7|S|2\r\n2|S|1\n6|U|1|2\n4|P|3|1\r\n")
        .await
        .unwrap();
    // 1 follows 2, so 2's status (3) reaches 1; after the unfollow (6) it does not (7).
    expect(&mut c1, &["3|S|2", "4|P|3|1", "5|B"]).await;
    expect(&mut c2, &["1|F|1|2", "5|B"]).await;
    expect(&mut c3, &["5|B", "8|P|9|3"]).await;
    let st = b.maze_status().await.unwrap();
    assert_eq!((st.next_seq, st.held, st.follows), (9, 0, 0));
}

#[actix_rt::test]
async fn a_follow_made_while_offline_counts_after_connecting() {
    let b = start("").await;
    let mut c2 = client(&b, 2).await;
    let mut s = source(&b).await;
    s.write_all(b"1|F|5|2\n2|F|5|7\n").await.unwrap();
    wait_next_seq(&b, 3).await;
    let mut c5 = client(&b, 5).await;
    s.write_all(b"3|S|2\n4|S|7\n5|S|5\n").await.unwrap();
    expect(&mut c5, &["3|S|2", "4|S|7"]).await;
    expect(&mut c2, &["1|F|5|2"]).await;
}

#[actix_rt::test]
async fn bug1_a_malformed_line_never_stalls_the_stream() {
    let (log, _g) = Log::capture();
    let b = start("").await;
    let mut c7 = client(&b, 7).await;
    let mut s = source(&b).await;
    // go-eventserver skips `1|X|1|7` without applying 1, and then waits for ever.
    s.write_all(b"1|X|1|7\n2|B\n3|P|1|7\nzz|B\n4|F|1\n5|B\n")
        .await
        .unwrap();
    expect(&mut c7, &["2|B", "3|P|1|7", "5|B"]).await;
    let line = log
        .wait_for(&["sequence number is consumed as a no-op", "seq=1"])
        .await;
    assert!(
        line.contains("unknown event type `X`") && line.contains("offset=0"),
        "{line}"
    );
    log.wait_for(&["seq=4", "event type F takes 4 fields, got 3"])
        .await;
    log.wait_for(&["without a sequence number, dropped", "offset=20"])
        .await;
    assert_eq!(b.stats().snapshot().maze_noops, 2);
}

#[actix_rt::test]
async fn bug2_clients_are_unregistered_on_eof() {
    let b = start("").await;
    let c = client(&b, 4).await;
    let mut keep = client(&b, 5).await;
    drop(c);
    for _ in 0..500 {
        if sessions(&b).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sessions(&b).await, 1, "the closed client left the router");
    assert_eq!(b.tree().paths_of("session").len(), 1);
    let mut s = source(&b).await;
    s.write_all(b"1|P|1|4\n2|P|1|5\n").await.unwrap();
    expect(&mut keep, &["2|P|1|5"]).await;
}

#[actix_rt::test]
async fn bug3_every_connection_of_a_user_id_gets_its_notifications() {
    let b = start("").await;
    let mut a = client(&b, 8).await;
    let mut a2 = client(&b, 8).await;
    let mut s = source(&b).await;
    s.write_all(b"1|P|3|8\n2|F|3|8\n3|S|8\n").await.unwrap();
    expect(&mut a, &["1|P|3|8", "2|F|3|8"]).await;
    expect(&mut a2, &["1|P|3|8", "2|F|3|8"]).await;
}

#[actix_rt::test]
async fn bug4_a_new_source_starts_a_new_stream_and_a_second_is_refused() {
    let (log, _g) = Log::capture();
    let b = start("").await;
    let mut c = client(&b, 1).await;
    let mut s1 = source(&b).await;
    s1.write_all(b"1|B\n2|F|2|1\n").await.unwrap();
    expect(&mut c, &["1|B", "2|F|2|1"]).await;

    // A second source while the first is connected: refused, with a reason.
    let mut intruder = source(&b).await;
    assert!(closed(&mut intruder).await);
    log.wait_for(&["event source refused", "another event source is connected"])
        .await;
    s1.write_all(b"3|B\n").await.unwrap();
    expect(&mut c, &["3|B"]).await;

    // The first goes; the next one starts again at 1, with an empty graph.
    drop(s1);
    log.wait_for(&["event source closed next_seq=4"]).await;
    let mut s2 = source(&b).await;
    s2.write_all(b"1|B\n2|S|2\n").await.unwrap();
    expect(&mut c, &["1|B"]).await;
    log.wait_for(&[
        "new event source: stream reset to sequence 1",
        "cleared_follows=1",
    ])
    .await;
}

#[actix_rt::test]
async fn on_new_source_continue_keeps_sequence_and_graph() {
    let (log, _g) = Log::capture();
    let b = start("on_new_source = \"continue\"").await;
    let mut c = client(&b, 1).await;
    let mut s1 = source(&b).await;
    s1.write_all(b"1|F|1|2\n").await.unwrap();
    wait_next_seq(&b, 2).await;
    drop(s1);
    log.wait_for(&["event source closed next_seq=2"]).await;
    let mut s2 = source(&b).await;
    s2.write_all(b"2|S|2\n").await.unwrap();
    expect(&mut c, &["2|S|2"]).await;
}

#[actix_rt::test]
async fn bug5_bad_id_lines_close_the_connection_with_a_reason() {
    let (log, _g) = Log::capture();
    let b = start("id_timeout_ms = 200").await;
    let addr = b.maze().unwrap().client_addr;
    for (line, reason) in [
        (&b" 12 \r\n"[..], "invalid user id line"),
        (b"abc\r\n", "invalid user id line"),
        (b"123456789012345678901234\r\n", "invalid user id line"),
        (b"1|B\r\n", "expected a user id"),
        (&[b'9'; 100][..], "line longer than 64 bytes"),
    ] {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(line).await.unwrap();
        assert!(closed(&mut c).await, "{line:?}");
        let peer = c.local_addr().unwrap().to_string();
        log.wait_for(&["bad id line", &peer, reason]).await;
    }
    // Too slow: no id line within id_timeout_ms.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    assert!(closed(&mut slow).await);
    log.wait_for(&[
        "no id line in time",
        "id_timeout_ms=200",
        &slow.local_addr().unwrap().to_string(),
    ])
    .await;
    assert_eq!(sessions(&b).await, 0);
}

#[actix_rt::test]
async fn bug6_a_client_that_stops_reading_is_cut_off_and_the_others_get_everything() {
    let (log, _g) = Log::capture();
    // The clients' backlog pauses the source at 64 KiB; a client whose output does not
    // move for 200 ms while the source waits is cut off, and the stream goes on.
    let cfg = maze_config(
        "output_buffer_bytes = 1048576",
        "pace_output_bytes = 65536\nclient_stall_ms = 200",
    );
    let b = switchyard::start(&cfg).await.unwrap();
    // The stuck client's kernel buffer is small, so its backlog reaches the broker soon.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stuck = sock.connect(b.maze().unwrap().client_addr).await.unwrap();
    stuck.write_all(b"1\r\n").await.unwrap();
    eventually_sessions(&b, 1).await;
    let mut reader = client(&b, 2).await;
    let n = 1_500_000u64;
    let mut s = source(&b).await;
    let writer = actix_rt::spawn(async move {
        let mut buf = Vec::new();
        for seq in 1..=n {
            buf.extend_from_slice(format!("{seq}|B\n").as_bytes());
            if buf.len() > 60_000 {
                s.write_all(&buf).await.unwrap();
                buf.clear();
            }
        }
        s.write_all(&buf).await.unwrap();
        s
    });
    // The reader gets every line, in order, while the other client is cut off.
    let mut lines = 0u64;
    let mut tail = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    while lines < n {
        let r = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut chunk)).await;
        let got = r
            .unwrap_or_else(|_| panic!("the reader stalled after {lines} lines"))
            .unwrap();
        assert!(got > 0, "reader closed after {lines} lines");
        lines += chunk[..got].iter().filter(|&&c| c == b'\n').count() as u64;
        tail.extend_from_slice(&chunk[..got]);
        let keep = tail.len().saturating_sub(64);
        tail.drain(..keep);
    }
    assert!(tail.ends_with(format!("\n{n}|B\r\n").as_bytes()));
    writer.await.unwrap();
    assert_eq!(b.stats().snapshot().slow_consumer_disconnects, 1);
    log.wait_for(&["slow consumer", "user=1 "]).await;
    assert!(b.stats().snapshot().maze_source_pauses > 0);
    assert!(closed(&mut stuck).await);
}

async fn eventually_sessions(b: &Broker, n: usize) {
    for _ in 0..500 {
        if sessions(b).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never {n} sessions");
}

#[actix_rt::test]
async fn bug7_one_write_per_batch_not_per_notification() {
    let b = start("").await;
    let mut c = client(&b, 1).await;
    let before = b.stats().snapshot().socket_writes;
    let events: String = (1..=2000).map(|s| format!("{s}|B\n")).collect();
    let mut s = source(&b).await;
    s.write_all(events.as_bytes()).await.unwrap();
    let want: Vec<String> = (1..=2000).map(|s| format!("{s}|B")).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    expect(&mut c, &want).await;
    let writes = b.stats().snapshot().socket_writes - before;
    assert!(writes <= 10, "{writes} writes for 2000 notifications");
}

#[actix_rt::test]
async fn bug8_the_reorder_buffer_is_bounded_and_the_source_is_paused() {
    let b = start("reorder_window = 16").await;
    let mut c = client(&b, 1).await;
    let mut s = source(&b).await;
    // Sequence 1 never comes: everything else is at least one window ahead of it.
    let writer = actix_rt::spawn(async move {
        let mut buf = Vec::new();
        for seq in 2..=5_000_000u64 {
            buf.extend_from_slice(format!("{seq}|B\n").as_bytes());
            if buf.len() > 60_000 {
                s.write_all(&buf).await?;
                buf.clear();
            }
        }
        s.write_all(&buf).await
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !writer.is_finished(),
        "the broker stopped reading the source"
    );
    let st = b.maze_status().await.unwrap();
    assert!(st.source_paused, "{st:?}");
    // The ring plus at most one socket read of events: 128 KiB of lines of at least
    // 4 bytes (`N|B\n`). The lines here are 4 to 10 bytes, so a full first read holds
    // about 17.7 k of them (a bound of 128 KiB / 8 failed whenever that read was full).
    assert!(st.held <= 16 + (128 << 10) / 4, "{st:?}");
    assert_eq!(st.next_seq, 1);
    expect_nothing(&mut c).await;
    writer.abort();
}

#[actix_rt::test]
async fn gap_timeout_skips_a_missing_sequence_number() {
    let (log, _g) = Log::capture();
    let b = start("reorder_window = 16\ngap_timeout_ms = 100").await;
    let mut c = client(&b, 1).await;
    let mut s = source(&b).await;
    let n = 5_000u64;
    let events: String = (2..=n).map(|s| format!("{s}|B\n")).collect();
    s.write_all(events.as_bytes()).await.unwrap();
    let want: Vec<String> = (2..=n).map(|s| format!("{s}|B")).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    expect(&mut c, &want).await;
    log.wait_for(&["sequence number missing, skipped", "seq=1"])
        .await;
    assert_eq!(b.stats().snapshot().maze_gaps_skipped, 1);
}

/// The bench's own checker, 100 k events, against the in-process broker.
#[test]
fn bench_checker_passes_on_100k_events() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let broker = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let b = switchyard::start(&maze_config("", "")).await.unwrap();
            let m = b.maze().unwrap().clone();
            tx.send((m.event_addr, m.client_addr)).unwrap();
            b.run_until(async {
                let _ = stop_rx.await;
            })
            .await;
        })
    });
    let (event_addr, client_addr) = rx.recv().unwrap();
    let opts = switchyard::bench::maze::Options {
        total_events: 100_000,
        concurrency: 20,
        users: 200,
        max_batch: 100,
        seed: 666,
        timeout: Duration::from_secs(20),
        event_addr,
        client_addr,
        broker_pid: Some(std::process::id()),
        progress: false,
    };
    let report = switchyard::bench::maze::run(&opts).unwrap();
    stop_tx.send(()).unwrap();
    broker.join().unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.notifications, report.expected_notifications);
    assert!(report.notifications > 100_000, "{report}");
    assert!(report.peak_rss_kib.is_some());
}

#[actix_rt::test]
async fn maze_topic_journals_every_event_in_sequence_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(
        &format!(
            "[broker]\nbind = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\nfsync = \"never\"\n[maze]\nevent_bind = \"127.0.0.1:0\"\nclient_bind = \"127.0.0.1:0\"\ntopic = \"maze-log\"\n",
            dir.path().display()
        ),
        "test",
    )
    .unwrap();
    let b = switchyard::start(&cfg).await.unwrap();
    let mut s = source(&b).await;
    s.write_all(b"3|B\n1|F|1|2\n2|X\n4|S|1\n").await.unwrap();
    wait_next_seq(&b, 5).await;
    // The journal is a topic like any other: read it back over the broker port.
    let mut c = TcpStream::connect(b.local_addr()).await.unwrap();
    c.write_all(b"topic subscribe 3 0\ntopic 8\nmaze-logfrom 8\nearliestsub 1\nj")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = tokio::time::timeout_at(deadline, c.read(&mut buf))
            .await
            .expect("journal read back")
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&got).contains("4|S|1") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&got);
    let order: Vec<usize> = ["1|F|1|2", "3|B", "4|S|1"]
        .iter()
        .map(|l| text.find(l).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "in sequence order: {text}"
    );
    assert!(!text.contains("2|X"), "a malformed line is not an event");
}
