//! SSE streams that lose nothing, against the real broker on port 0: a group member
//! whose client goes away leaves the group at once and leaves its unread records to the
//! next member; `Last-Event-ID` resumes a stream exactly; idle streams get keep-alives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::gateway::*;
use common::http::{request, Sse};

/// Reads records until every partition below `partitions` has reached offset `end - 1`.
async fn read_to_end(s: &mut Sse, partitions: u32, end: u64) -> BTreeMap<u32, Vec<u64>> {
    let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    while (0..partitions).any(|p| got.get(&p).and_then(|v| v.last()) != Some(&(end - 1))) {
        let (p, o, v, _) = s.record().await.expect("the stream went on");
        assert_eq!(v, format!("p{p}-{o}"));
        got.entry(p).or_default().push(o);
    }
    got
}

#[actix::test]
async fn an_sse_group_member_that_goes_away_loses_nothing_to_the_group() {
    let (b, _dir, _g) = start("").await;
    let h = b.gateway().http.unwrap();
    create_topic(h, "lossless", 2).await;
    let path = "/v1/topics/lossless/stream?group=g&from=earliest";
    // The first member reads all there is, and the group's commit catches up with it.
    for p in 0..2 {
        publish_range(h, "lossless", p, 0..50).await;
    }
    let mut a = Sse::open(h, path, &[]).await;
    read_to_end(&mut a, 2, 50).await;
    wait_committed(h, "lossless", "g", &[(0, 50), (1, 50)]).await;
    // Then it reads a few of the next records and goes away with the rest unread: the
    // server had taken them to write, and they sit in the dead connection's buffers.
    for p in 0..2 {
        publish_range(h, "lossless", p, 50..250).await;
    }
    let mut read_by_a = BTreeSet::new();
    for _ in 0..10 {
        let (p, o, _, _) = a.record().await.unwrap();
        read_by_a.insert((p, o));
    }
    drop(a);
    // The next member gets every record the first did not read.
    let mut next = Sse::open(h, path, &[]).await;
    let got = read_to_end(&mut next, 2, 250).await;
    covers_the_rest(&got, &read_by_a, 50, 250, 2);
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_closed_sse_client_leaves_its_group_at_once() {
    let (b, _dir, log, _g) = start_logged("").await;
    let h = b.gateway().http.unwrap();
    create_topic(h, "leave", 2).await;
    let path = "/v1/topics/leave/stream?group=g&from=earliest";
    let a = Sse::open(h, path, &[]).await;
    let mut other = Sse::open(h, path, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rebalances(&log, "g")
        .last()
        .is_some_and(|l| l.contains("members=2"))
    {
        assert!(Instant::now() < deadline, "{}", log.text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Closed with nothing unread: a FIN, no reset, and nothing is written to it after.
    let closed = Instant::now();
    drop(a);
    while !rebalances(&log, "g")
        .last()
        .is_some_and(|l| l.contains("members=1"))
    {
        assert!(
            closed.elapsed() < Duration::from_secs(2),
            "the closed member is still in the group: {:?}",
            rebalances(&log, "g")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The other member now reads both partitions, every record once.
    for p in 0..2 {
        publish_range(h, "leave", p, 0..20).await;
    }
    let got = read_to_end(&mut other, 2, 20).await;
    for p in 0..2 {
        assert_eq!(got[&p], (0..20).collect::<Vec<_>>());
    }
    b.run_until(async {}).await;
}

#[actix::test]
async fn last_event_id_resumes_after_each_partitions_offset() {
    let (b, _dir, _g) = start("").await;
    let h = b.gateway().http.unwrap();
    create_topic(h, "resume", 3).await;
    for p in 0..3 {
        publish_range(h, "resume", p, 0..10).await;
    }
    let path = "/v1/topics/resume/stream?from=earliest";
    let mut s = Sse::open(h, path, &[]).await;
    let mut seen = BTreeSet::new();
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    let mut id = String::new();
    for _ in 0..12 {
        let (p, o, _, i) = s.record().await.unwrap();
        seen.insert((p, o));
        last.insert(p, o);
        id = i;
    }
    // The id is the position of the whole stream: each partition's last offset.
    let want: Vec<String> = last.iter().map(|(p, o)| format!("{p}:{o}")).collect();
    assert_eq!(id, want.join(","));
    drop(s);
    let mut s = Sse::open(h, path, &[("last-event-id", &id)]).await;
    for _ in 0..18 {
        let (p, o, _, _) = s.record().await.unwrap();
        assert!(seen.insert((p, o)), "{p}:{o} came again after {id}");
    }
    assert_eq!(seen.len(), 30);
    drop(s);

    // One partition: the id is `partition:offset`.
    let one = "/v1/topics/resume/stream?partition=1&from=earliest";
    let mut s = Sse::open(h, one, &[]).await;
    for o in 0..3 {
        assert_eq!(s.record().await.unwrap().3, format!("1:{o}"));
    }
    drop(s);
    let mut s = Sse::open(h, one, &[("last-event-id", "1:2")]).await;
    let (p, o, v, id) = s.record().await.unwrap();
    assert_eq!((p, o, v.as_str(), id.as_str()), (1, 3, "p1-3", "1:3"));
    drop(s);

    let r = request(h, "GET", path, &[("last-event-id", "one:2")], b"").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("partition:offset"));
    b.run_until(async {}).await;
}

#[actix::test]
async fn an_idle_sse_stream_gets_keep_alive_comments() {
    let (b, _dir, _g) = start("stream_keepalive_ms = 100").await;
    let h = b.gateway().http.unwrap();
    create_topic(h, "quiet", 1).await;
    let mut s = Sse::open(h, "/v1/topics/quiet/stream", &[]).await;
    let opened = Instant::now();
    for _ in 0..2 {
        let e = s.next_event().await.expect("a keep-alive");
        assert_eq!((e.comments, e.data), (vec!["keep-alive".to_string()], None));
    }
    assert!(opened.elapsed() >= Duration::from_millis(150));
    publish_range(h, "quiet", 0, 0..1).await;
    let (_, o, v, _) = s.record().await.unwrap();
    assert_eq!((o, v.as_str()), (0, "p0-0"));
    b.run_until(async {}).await;
}
