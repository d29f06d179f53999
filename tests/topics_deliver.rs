//! Batched deliveries over real TCP: a subscription made with `batch = N` gets up to N
//! records per `topic deliver`, in offset order, with their keys, labels, timestamps and
//! values intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::topic_env as env;
use common::topics::{config, label, Client};
use switchyard_actors::topic::deliver_batch::deliver_items;
use switchyard_actors::topic::wire::batch_payload;

#[actix_rt::test]
async fn a_batched_subscription_gets_many_records_per_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut p = Client::connect(b.local_addr()).await;
    let values: Vec<String> = (0..250).map(|i| format!("value-{i}")).collect();
    for (n, chunk) in values.chunks(50).enumerate() {
        let keys: Vec<String> = (0..chunk.len()).map(|i| format!("k{i}")).collect();
        let payload = batch_payload(
            chunk
                .iter()
                .zip(&keys)
                .map(|(v, k)| (Some(k.as_bytes()), v.as_bytes())),
        );
        let count = chunk.len().to_string();
        let id = n.to_string();
        let labels = [
            ("topic", "b"),
            ("id", id.as_str()),
            ("count", count.as_str()),
            ("trace", id.as_str()),
        ];
        p.send(&env("publish", &labels, &payload)).await;
        assert!(p.next().await.is("topic", "ack"));
    }

    let mut c = Client::connect(b.local_addr()).await;
    c.send(&env(
        "subscribe",
        &[
            ("topic", "b"),
            ("sub", "s"),
            ("from", "earliest"),
            ("batch", "100"),
            ("credit", "1000"),
        ],
        b"",
    ))
    .await;
    assert!(c.next().await.is("topic", "subscribed"));
    let mut items = Vec::new();
    let mut envelopes = 0;
    while items.len() < 250 {
        let d = c.next().await;
        assert!(d.is("topic", "deliver"), "{d:?}");
        let got = deliver_items(&d).unwrap();
        assert_eq!(label(&d, "count"), got.len().to_string());
        assert!(got.len() <= 100, "{} records in one deliver", got.len());
        envelopes += 1;
        items.extend(got);
    }
    assert!(
        envelopes < 250,
        "batched: {envelopes} envelopes for 250 records"
    );
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.offset, i as u64);
        assert_eq!(item.value, values[i].as_bytes());
        assert_eq!(item.key.as_deref(), Some(format!("k{}", i % 50).as_bytes()));
        assert_eq!(
            item.labels.get_str("trace"),
            Some((i / 50).to_string().as_str())
        );
        assert!(item.timestamp_ms > 1_600_000_000_000);
    }

    // A bad batch is an error; the connection stays usable.
    for bad in ["0", "100001", "many"] {
        c.send(&env(
            "subscribe",
            &[("topic", "b"), ("sub", "x"), ("batch", bad)],
            b"",
        ))
        .await;
        let e = c.next().await;
        assert!(e.is("topic", "error"), "{e:?}");
        assert!(label(&e, "error").contains("batch"), "{e:?}");
    }
    c.send(&env("list", &[], b"")).await;
    assert!(c.next().await.is("topic", "list"));
}
