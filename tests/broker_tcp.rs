//! The broker over real TCP on 127.0.0.1, started in-process on port 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[actix_rt::test]
async fn ping_pong_and_a_malformed_frame_closes_only_its_connection() {
    let (log, _guard) = Log::capture();
    let broker = start("").await;
    let addr = broker.local_addr();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = connect(addr).await;
        ping(&mut c).await;
        clients.push(c);
    }
    let paths = broker.tree().paths_of("connection");
    assert_eq!(paths.len(), 3, "{paths:?}");
    for c in &clients {
        let path = format!(
            "root/listener:broker/connection:{}",
            c.local_addr().unwrap()
        );
        assert!(paths.contains(&path), "{path} in {paths:?}");
    }

    // Client 1 sends a good ping, then a header whose size is not a number.
    let bad_peer = clients[1].local_addr().unwrap().to_string();
    clients[1]
        .write_all(b"command ping 0 0\na b 0 x\n")
        .await
        .unwrap();
    assert!(closed_by_peer(&mut clients[1]).await);
    let line = log.wait_for(&["malformed frame", &bad_peer]).await;
    // Two pings (34 bytes) went before the bad header.
    assert!(line.contains("offset=34"), "{line}");
    assert!(line.contains("expected integer for size"), "{line}");

    // An oversize frame is refused from its header on another connection.
    let mut big = connect(addr).await;
    big.write_all(b"topic publish 0 99999999\n").await.unwrap();
    assert!(closed_by_peer(&mut big).await);
    log.wait_for(&["malformed frame", "frame of at least 100000024 bytes"])
        .await;

    // The others carry on.
    ping(&mut clients[0]).await;
    ping(&mut clients[2]).await;
    assert_eq!(broker.stats().snapshot().malformed_frames, 2);
    eventually("closed connections leave the tree", || {
        broker.tree().paths_of("connection").len() == 2
    })
    .await;
    log.wait_for(&["actor stopped", &format!("connection:{bad_peer}")])
        .await;
}

#[actix_rt::test]
async fn a_client_that_never_reads_its_answers_is_paced_and_loses_nothing() {
    let budget = 64 * 1024;
    let broker = start(&format!(
        "output_buffer_bytes = {budget}\nmax_frame_bytes = 4096\nmax_line_bytes = 1024"
    ))
    .await;
    let addr = broker.local_addr();
    let mut bystander = connect(addr).await;
    ping(&mut bystander).await;

    let (mut rd, mut wr) = connect(addr).await.into_split();
    let chunk = PING.repeat(4096);
    let mut sent = 0usize;
    // Pings until the broker stops reading them (its answers are not taken).
    loop {
        match tokio::time::timeout(Duration::from_secs(2), wr.write_all(&chunk)).await {
            Ok(Ok(())) => sent += 4096,
            Ok(Err(e)) => panic!("cut off after {sent} pings: {e}"),
            Err(_) => break,
        }
        assert!(sent < 64 << 20, "never paced");
    }
    ping(&mut bystander).await;
    let stats = broker.stats().snapshot();
    assert_eq!(stats.slow_consumer_disconnects, 0);
    assert!(
        stats.output_peak_bytes <= budget,
        "peak {} over budget {budget}",
        stats.output_peak_bytes
    );
    // Every ping written whole is answered once the client reads.
    drop(wr);
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    assert!(got >= sent * ALIVE.len(), "{got} bytes for {sent} pings");
    assert_eq!(got % ALIVE.len(), 0);
}

#[actix_rt::test]
async fn a_client_that_never_reads_event_bus_messages_is_cut_at_its_output_budget() {
    let (log, _guard) = Log::capture();
    let budget = 64 * 1024;
    let broker = start(&format!(
        "output_buffer_bytes = {budget}\nmax_frame_bytes = 4096\nmax_line_bytes = 1024"
    ))
    .await;
    let addr = broker.local_addr();
    let mut greedy = connect(addr).await;
    greedy.write_all(b"eventbus subscribe 0 0\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = greedy.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"eventbus subscribed 0 0\n");
    let greedy_peer = greedy.local_addr().unwrap().to_string();

    let mut source = connect(addr).await;
    let payload = format!("{{\"events\":[\"x.\"],\"data\":\"{}\"}}", "d".repeat(2000));
    let frame = format!("eventbus message 0 {}\n{payload}", payload.len());
    let mut sent = 0;
    while broker.stats().snapshot().slow_consumer_disconnects == 0 {
        source.write_all(frame.repeat(16).as_bytes()).await.unwrap();
        sent += 16;
        assert!(sent < 100_000, "never cut off");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    log.wait_for(&["slow consumer", &greedy_peer, "budget=65536"])
        .await;
    let stats = broker.stats().snapshot();
    assert!(
        stats.output_peak_bytes <= budget,
        "peak {} over budget {budget}",
        stats.output_peak_bytes
    );
    assert!(closed_by_peer(&mut greedy).await);
    ping(&mut source).await;
}

#[actix_rt::test]
async fn block_policy_pauses_input_and_loses_nothing() {
    let budget = 64 * 1024;
    let broker = start(&format!(
        "output_buffer_bytes = {budget}\nmax_frame_bytes = 4096\nslow_consumer = \"block\""
    ))
    .await;
    let c = connect(broker.local_addr()).await;
    let (mut rd, mut wr) = c.into_split();
    let pings = 400_000usize;
    let writer = actix_rt::spawn(async move {
        let chunk = PING.repeat(1000);
        for _ in 0..pings / 1000 {
            wr.write_all(&chunk).await.unwrap();
        }
        wr
    });
    // Let the replies pile up while nobody reads them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < pings * ALIVE.len() {
        let n = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after {got} bytes");
        assert!(buf[..n].iter().all(|b| ALIVE.contains(b)));
        got += n;
    }
    assert_eq!(got, pings * ALIVE.len());
    writer.await.unwrap();
    let stats = broker.stats().snapshot();
    assert_eq!(stats.slow_consumer_disconnects, 0);
    assert!(
        stats.output_peak_bytes <= budget,
        "peak {}",
        stats.output_peak_bytes
    );
}

#[actix_rt::test]
async fn idle_connections_are_closed() {
    let (log, _guard) = Log::capture();
    let broker = start("idle_timeout_ms = 150").await;
    let mut silent = connect(broker.local_addr()).await;
    let mut chatty = connect(broker.local_addr()).await;
    for _ in 0..6 {
        ping(&mut chatty).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed_by_peer(&mut silent).await);
    ping(&mut chatty).await;
    assert_eq!(broker.stats().snapshot().idle_timeouts, 1);
    log.wait_for(&["idle timeout", &silent.local_addr().unwrap().to_string()])
        .await;
}

#[actix_rt::test]
async fn connections_past_max_connections_are_refused() {
    let (log, _guard) = Log::capture();
    let broker = start("max_connections = 2").await;
    let addr = broker.local_addr();
    let mut a = connect(addr).await;
    let mut b = connect(addr).await;
    ping(&mut a).await;
    ping(&mut b).await;
    let mut c = connect(addr).await;
    assert!(closed_by_peer(&mut c).await);
    assert_eq!(broker.stats().snapshot().connections_refused, 1);
    log.wait_for(&[
        "max_connections reached",
        &c.local_addr().unwrap().to_string(),
    ])
    .await;
    drop(a);
    eventually("a slot frees up", || {
        broker.stats().snapshot().connections_open == 1
    })
    .await;
    let mut d = connect(addr).await;
    ping(&mut d).await;
    ping(&mut b).await;
}

#[actix_rt::test]
async fn shutdown_drains_connections_and_stops_accepting() {
    let (log, _guard) = Log::capture();
    let broker = start("").await;
    let addr = broker.local_addr();
    let mut c = connect(addr).await;
    ping(&mut c).await;
    // A reply queued just before shutdown still arrives.
    c.write_all(PING).await.unwrap();
    eventually("second ping read", || {
        broker.stats().snapshot().frames_in == 2
    })
    .await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = actix_rt::spawn(broker.run_until(async {
        let _ = rx.await;
    }));
    tx.send(()).unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest, ALIVE, "queued reply flushed, then EOF");
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port closed after shutdown"
    );
    log.wait_for(&["shutdown complete"]).await;
}

#[actix_rt::test]
async fn tree_is_logged_with_paths() {
    let (log, _guard) = Log::capture();
    let broker = start("").await;
    let mut c = connect(broker.local_addr()).await;
    ping(&mut c).await;
    let peer = c.local_addr().unwrap();
    log.wait_for(&[
        "actor started",
        &format!("path=root/listener:broker/connection:{peer}"),
    ])
    .await;
    broker.log_tree("test");
    let text = log.text();
    assert!(
        text.contains("actor tree (5 actors, on test):\nroot [3 running]\n├── topics:registry\n├── drivers:host [0/0 alive]\n└── listener:broker ["),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "    └── connection:{peer} [dipper read_buffer=4096]"
        )),
        "{text}"
    );
}

#[actix_rt::test]
async fn tree_is_printed_every_tree_interval_ms() {
    let (log, _guard) = Log::capture();
    let cfg = switchyard::Config::parse(
        &format!("[broker]\nbind = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\n[debug]\ntree_interval_ms = 50\n[shutdown]\ngrace_ms = 1000\n", tempfile::tempdir().unwrap().keep().display()),
        "test",
    )
    .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = actix_rt::spawn(switchyard::run(cfg, async {
        let _ = rx.await;
    }));
    log.wait_for(&["actor tree (4 actors, on debug.tree_interval_ms)"])
        .await;
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[actix_rt::test]
async fn a_peer_that_closes_mid_frame_is_not_a_malformed_frame() {
    let (log, _guard) = Log::capture();
    let broker = start("").await;
    let mut c = connect(broker.local_addr()).await;
    let peer = c.local_addr().unwrap().to_string();
    // A whole ping, then 23 bytes of a publish that announced 100 bytes of payload.
    c.write_all(b"command ping 0 0\ntopic publish 0 100\nabc")
        .await
        .unwrap();
    c.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut answer))
        .await
        .expect("closed in time")
        .unwrap();
    assert_eq!(answer, ALIVE, "the ping before it is answered");
    let line = log.wait_for(&["peer closed mid-frame", &peer]).await;
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("buffered=23"), "{line}");
    assert!(
        line.contains("97 more bytes of the frame were due"),
        "{line}"
    );
    assert!(
        log.line_with(&["malformed frame"]).is_none(),
        "{}",
        log.text()
    );
    assert_eq!(broker.stats().snapshot().malformed_frames, 0);
}

#[actix_rt::test]
async fn the_broker_port_binds_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = switchyard::Config::parse(
        &format!(
            "[broker]\nbind = \"localhost:0\"\n[storage]\ndir = \"{}\"\n",
            dir.path().display()
        ),
        "test",
    )
    .unwrap();
    let broker = switchyard::start(&config).await.unwrap();
    assert!(broker.local_addr().ip().is_loopback());
    ping(&mut connect(broker.local_addr()).await).await;
    broker.run_until(async {}).await;
}
