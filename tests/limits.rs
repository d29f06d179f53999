//! Connection limits over real TCP (issue 12, "connection lock-out"): connections per
//! peer address, the first-frame deadline, the listen backlog and rate-limited
//! warnings. Linux routes all of 127/8 on `lo`, so clients bound to 127.0.0.2 and
//! 127.0.0.3 are other addresses to the broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// A client connecting from `ip` (any 127.x.y.z).
async fn connect_from(ip: [u8; 4], addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((ip, 0))).unwrap();
    s.connect(addr).await.unwrap()
}

/// What the broker sent before closing; panics if it does not close within 5 s.
async fn read_until_closed(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[actix_rt::test]
async fn connections_past_max_connections_per_ip_are_refused_with_a_reason() {
    let (log, _guard) = Log::capture();
    let broker = start("max_connections_per_ip = 3").await;
    let addr = broker.local_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect(addr).await;
        ping(&mut c).await;
        held.push(c);
    }
    let mut refused = connect(addr).await;
    let said = read_until_closed(&mut refused).await;
    let why =
        "connection refused: 3 connections open from 127.0.0.1, the most one address may have";
    assert_eq!(
        said,
        format!("state refused 1 0\nerror {}\n{why}", why.len())
    );
    let stats = broker.stats().snapshot();
    assert_eq!(stats.connections_refused, 1);
    assert_eq!(stats.connections_refused_per_ip, 1);
    log.wait_for(&[
        "connection refused: max_connections_per_ip reached",
        &refused.local_addr().unwrap().to_string(),
    ])
    .await;
    // Another address is not held to 127.0.0.1's count.
    let mut other = connect_from([127, 0, 0, 2], addr).await;
    ping(&mut other).await;
    // A slot of 127.0.0.1 frees up when one of its connections closes.
    drop(held.pop());
    eventually("a slot frees up", || {
        broker.stats().snapshot().connections_open == 3
    })
    .await;
    let mut again = connect(addr).await;
    ping(&mut again).await;
}

#[actix_rt::test]
async fn idle_connections_cannot_lock_good_clients_out() {
    let (log, _guard) = Log::capture();
    let broker = start(
        "max_connections = 6\nmax_connections_per_ip = 4\nfirst_frame_timeout_ms = 400\nidle_timeout_ms = 0",
    )
    .await;
    let addr = broker.local_addr();
    // Four peers that connect and never send a whole frame (one sends half a header).
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(addr).await);
    }
    tokio::io::AsyncWriteExt::write_all(&mut idle[0], b"command pi")
        .await
        .unwrap();
    // Their address is full, but a good client from elsewhere is served at once.
    let mut refused = connect(addr).await;
    assert!(read_until_closed(&mut refused)
        .await
        .starts_with("state refused"));
    let started = Instant::now();
    let mut good = connect_from([127, 0, 0, 2], addr).await;
    ping(&mut good).await;
    // The idle ones are closed once the deadline passes; the good client stays.
    for c in &mut idle {
        assert!(closed_by_peer(c).await);
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    ping(&mut good).await;
    assert_eq!(broker.stats().snapshot().first_frame_timeouts, 4);
    log.wait_for(&[
        "no complete frame in time, closing",
        "first_frame_timeout_ms=400",
    ])
    .await;
    // Their address is free again.
    eventually("idle slots freed", || {
        broker.stats().snapshot().connections_open == 1
    })
    .await;
    let mut back = connect(addr).await;
    ping(&mut back).await;
}

/// `suppressed=N` of a log line, 0 when absent.
fn suppressed(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("suppressed="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Refuses `attempts` connections from 127.0.0.1 on a broker started with `extra`, and
/// checks the warnings `what` came at most one a second and account for every refusal.
async fn refusals_are_rate_limited(extra: &str, what: &str) {
    let (log, _guard) = Log::capture();
    let broker = start(extra).await;
    let addr = broker.local_addr();
    let mut held = connect(addr).await;
    ping(&mut held).await;
    let attempts = 300;
    let started = Instant::now();
    for _ in 0..attempts {
        let mut c = connect(addr).await;
        read_until_closed(&mut c).await;
    }
    let secs = started.elapsed().as_secs();
    eventually("every refusal counted", || {
        broker.stats().snapshot().connections_refused == attempts
    })
    .await;
    // Within a second of the burst the count of the lines left out is reported too.
    let mut accounted = 0;
    for _ in 0..300 {
        let text = log.text();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(what)).collect();
        assert!(
            lines.len() as u64 <= secs + 3,
            "{} lines for {attempts} refusals in {secs} s",
            lines.len()
        );
        // A line stands for its own refusal plus those it says were left out; a
        // `(repeats)` line only for those.
        accounted = lines
            .iter()
            .map(|l| suppressed(l) + u64::from(!l.contains("(repeats)")))
            .sum::<u64>();
        if accounted == attempts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(accounted, attempts, "{}", log.text());
}

#[actix_rt::test]
async fn refusals_at_max_connections_log_at_most_one_line_a_second_with_a_count() {
    refusals_are_rate_limited(
        "max_connections = 1",
        "connection refused: max_connections reached",
    )
    .await;
}

#[actix_rt::test]
async fn refusals_per_ip_log_at_most_one_line_a_second_with_a_count() {
    refusals_are_rate_limited(
        "max_connections_per_ip = 1",
        "connection refused: max_connections_per_ip reached",
    )
    .await;
}

fn maze_config(broker_extra: &str, maze_extra: &str) -> switchyard::Config {
    switchyard::Config::parse(
        &format!(
            "[broker]\nbind = \"127.0.0.1:0\"\n{broker_extra}\n[maze]\nevent_bind = \"127.0.0.1:0\"\nclient_bind = \"127.0.0.1:0\"\n{maze_extra}\n[shutdown]\ngrace_ms = 1000\n"
        ),
        "test",
    )
    .unwrap()
}

#[actix_rt::test]
async fn maze_ports_close_silent_sources_and_bound_clients_per_address() {
    let (log, _guard) = Log::capture();
    let b = switchyard::start(&maze_config(
        "first_frame_timeout_ms = 300",
        "max_clients_per_ip = 2\nid_timeout_ms = 60000",
    ))
    .await
    .unwrap();
    let m = b.maze().unwrap().clone();
    // An event source that connects and says nothing does not hold the stream.
    let mut silent = TcpStream::connect(m.event_addr).await.unwrap();
    assert!(closed_by_peer(&mut silent).await);
    assert_eq!(b.stats().snapshot().first_frame_timeouts, 1);
    log.wait_for(&[
        "no complete frame in time, closing",
        &silent.local_addr().unwrap().to_string(),
    ])
    .await;
    // Two clients from 127.0.0.1, a third is refused, one from 127.0.0.2 is served.
    let mut clients = Vec::new();
    for (ip, user) in [
        ([127, 0, 0, 1], 1),
        ([127, 0, 0, 1], 2),
        ([127, 0, 0, 2], 3),
    ] {
        let mut c = connect_from(ip, m.client_addr).await;
        tokio::io::AsyncWriteExt::write_all(&mut c, format!("{user}\r\n").as_bytes())
            .await
            .unwrap();
        clients.push(c);
    }
    let mut third = connect(m.client_addr).await;
    assert!(read_until_closed(&mut third).await.is_empty());
    assert_eq!(b.stats().snapshot().connections_refused_per_ip, 1);
    for _ in 0..500 {
        if b.maze_status().await.unwrap().sessions == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.maze_status().await.unwrap().sessions, 3);
    // A source that speaks streams as before.
    let mut source = TcpStream::connect(m.event_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut source, b"1|B\r\n")
        .await
        .unwrap();
    for c in &mut clients {
        let mut got = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"1|B\r\n");
    }
}

/// The accept queue of the listening socket on `port`, as `ss` reports it (Send-Q of
/// a listening socket); `None` when `ss` cannot be run.
fn backlog_of(port: u16) -> Option<u32> {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().next()?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

#[actix_rt::test]
async fn the_listen_backlog_is_raised_and_configurable() {
    let broker = start("").await;
    let Some(got) = backlog_of(broker.local_addr().port()) else {
        eprintln!("skipped: `ss` is not available to read the listen backlog");
        return;
    };
    assert_eq!(got, 1024.min(somaxconn()), "the default listen_backlog");
    let broker = start("listen_backlog = 700").await;
    assert_eq!(
        backlog_of(broker.local_addr().port()),
        Some(700.min(somaxconn()))
    );
}
