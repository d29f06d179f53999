//! Fan-out: subscribers at the same offset share one read of the partition per turn.
//! Each still gets every record once, in order, whatever credit it grants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::topic_env as env;
use common::topics::{config, Client};
use switchyard_actors::topic::deliver_batch::deliver_items;
use switchyard_actors::topic::wire::batch_payload;

#[actix_rt::test]
async fn subscribers_at_one_offset_each_get_every_record_with_their_own_credit() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut p = Client::connect(b.local_addr()).await;
    p.send(&env(
        "create",
        &[("topic", "fan"), ("partitions", "1"), ("id", "c")],
        b"",
    ))
    .await;
    assert!(p.next().await.is("topic", "created"));
    // Subscribed before anything is published: every publish finds all three at the
    // same offset, each asking for a different count.
    let credits = [7u64, 100, 5000];
    let mut subs = Vec::new();
    for (i, credit) in credits.iter().enumerate() {
        let mut c = Client::connect(b.local_addr()).await;
        let credit = credit.to_string();
        let batch = if i == 1 { "10" } else { "1" };
        c.send(&env(
            "subscribe",
            &[
                ("topic", "fan"),
                ("sub", "s"),
                ("credit", &credit),
                ("batch", batch),
            ],
            b"",
        ))
        .await;
        assert!(c.next().await.is("topic", "subscribed"));
        subs.push(c);
    }
    let total = 600usize;
    for n in 0..total / 100 {
        let values: Vec<String> = (0..100).map(|i| format!("v{}", n * 100 + i)).collect();
        let payload = batch_payload(values.iter().map(|v| (None, v.as_bytes())));
        let id = n.to_string();
        p.send(&env(
            "publish",
            &[("topic", "fan"), ("id", &id), ("count", "100")],
            &payload,
        ))
        .await;
        assert!(p.next().await.is("topic", "ack"));
    }
    for (c, credit) in subs.iter_mut().zip(credits) {
        let mut got = Vec::new();
        let mut since = 0;
        while got.len() < total {
            let d = c.next().await;
            assert!(d.is("topic", "deliver"), "{d:?}");
            let items = deliver_items(&d).unwrap();
            since += items.len() as u64;
            got.extend(items);
            if since == credit {
                let more = credit.to_string();
                c.send(&env("credit", &[("sub", "s"), ("credit", &more)], b""))
                    .await;
                since = 0;
            }
        }
        assert_eq!(got.len(), total);
        for (i, item) in got.iter().enumerate() {
            assert_eq!(item.offset, i as u64);
            assert_eq!(item.value, format!("v{i}").as_bytes());
        }
    }
}
