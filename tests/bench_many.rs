//! `switchyard bench topics` through the built binary against an in-process broker: it
//! creates the topics, publishes to each, finds the broker by its port, and deletes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cli::{broker, ok};

/// `(topic, partition, next offset)` of every partition row of `switchyard topics`.
fn partitions(listing: &str) -> Vec<(String, u32, u64)> {
    listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [t, p, _, next, _, _] => Some((t.to_string(), p.parse().ok()?, next.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

#[actix_rt::test]
async fn bench_topics_creates_fills_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "").await;
    let a = b.local_addr().to_string();
    let args = [
        "bench",
        "topics",
        "--broker",
        &a,
        "--topics",
        "20",
        "--partitions",
        "2",
        "--prefix",
        "m-",
        "--count",
        "30",
        "--warmup",
        "2",
        "--inflight",
        "8",
    ];
    let (report, _) = ok(&args, b"").await;
    assert!(report.starts_with("topics: 20 topics x 2 partitions (40 partitions), names m-0.."));
    // The broker runs in this process, and the bench found it by its port.
    assert!(
        report.contains(&format!("broker pid {}\n", std::process::id())),
        "{report}"
    );
    // The fds column: the first whole number of the step's line.
    let fds = |step: &str| -> u64 {
        let line = report.lines().find(|l| l.starts_with(step)).unwrap();
        line.split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap()
    };
    // Every partition keeps its active segment open.
    assert!(
        fds("after a publish to each partition") >= fds("before") + 40,
        "{report}"
    );
    assert!(
        report.contains("acked publish to m-0 among 20 topics, one 128 B record at a time: 30 in "),
        "{report}"
    );

    let (listing, _) = ok(&["topics", "--broker", &a], b"").await;
    let mine: Vec<_> = partitions(&listing)
        .into_iter()
        .filter(|(t, _, _)| t.starts_with("m-"))
        .collect();
    assert_eq!(mine.len(), 40, "{listing}");
    // One record in each partition, and the 32 publishes to m-0 in turn over its two.
    for (t, _, next) in &mine {
        let want = if t == "m-0" { 1 + 16 } else { 1 };
        assert_eq!(*next, want, "{t}: {listing}");
    }

    let (report, _) = ok(
        &[
            "bench", "topics", "--broker", &a, "--topics", "5", "--prefix", "d-", "--count", "3",
            "--warmup", "0", "--delete",
        ],
        b"",
    )
    .await;
    assert!(report.contains("\nafter deleting them ("), "{report}");
    let (listing, _) = ok(&["topics", "--broker", &a], b"").await;
    assert!(!listing.contains("d-"), "{listing}");
    assert!(listing.contains("m-19"), "{listing}");
}
