//! `switchyard backup` and `restore` against in-process brokers over real TCP: a backup
//! taken while a producer publishes with `fsync = "always"`, restored into a fresh data
//! dir and served again byte for byte with its group offsets; a restore as new topics
//! into a running broker; and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/backup.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cli::{broker, ok, run};
use helpers::*;
use switchyard::backup::{backup, restore_dir, restore_online, BackupOptions, RestoreOptions};
use switchyard::client::{Client, Target};

fn options(dir: &std::path::Path, topics: &[&str]) -> BackupOptions {
    BackupOptions {
        dir: dir.to_path_buf(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        log: log_config(),
    }
}

#[actix_rt::test]
async fn a_backup_taken_while_publishing_restores_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, bdir, data2) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let b = broker(&data, STORAGE).await;
    let to = Target::from(b.local_addr());
    let t = to.clone();
    blocking(move || {
        let mut c = Client::connect(t).unwrap();
        create(&mut c, "orders", 3, "round_robin");
        for p in 0..3 {
            for round in 0..10 {
                publish(&mut c, "orders", p, 150, &[("round", &round.to_string())]);
            }
        }
        commit(&mut c, "orders", "billing", 0, 700);
        commit(&mut c, "orders", "billing", 2, 1500);
        commit(&mut c, "orders", "audit", 1, 3);
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let (t, s) = (to.clone(), stop.clone());
    let producing = tokio::task::spawn_blocking(move || producer(t, "orders", 3, s));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (t, o) = (to.clone(), options(&bdir, &[]));
    let m = blocking(move || backup(t, &o, &mut Vec::new()).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    assert!(producing.await.unwrap() > 0);

    let topic = &m.topics[0];
    assert_eq!(topic.name, "orders");
    let groups = BTreeMap::from([
        ("audit".to_string(), BTreeMap::from([(1, 3)])),
        ("billing".to_string(), BTreeMap::from([(0, 700), (2, 1500)])),
    ]);
    assert_eq!(topic.groups, groups);
    // The copy stops at the snapshot while the producer went on.
    let t = to.clone();
    let now = blocking(move || listed(t, "orders")).await;
    let mut went_on = false;
    for p in &topic.partitions {
        assert_eq!(p.first, 0);
        assert!(p.end >= 1500, "{p:?}");
        went_on |= now["partitions"][p.partition as usize]["next_offset"]
            .as_u64()
            .unwrap()
            > p.end;
    }
    assert!(went_on, "the producer published after the snapshot");
    let mut report = Vec::new();
    assert!(switchyard::verify::run(&bdir, log_config(), false, &mut report).unwrap());
    let report = String::from_utf8(report).unwrap();
    assert!(
        report.contains(&format!(
            "3 partitions, {} records, 0 with damage",
            m.records()
        )),
        "{report}"
    );
    b.run_until(async {}).await;

    let r = RestoreOptions {
        from: bdir.clone(),
        data_dir: data2.clone(),
        force: false,
        log: log_config(),
    };
    assert_eq!(restore_dir(&r, &mut Vec::new()).unwrap(), m);
    let b2 = broker(&data2, STORAGE).await;
    let to2 = Target::from(b2.local_addr());
    let t = to2.clone();
    let served = blocking(move || listed(t, "orders")).await;
    let served_groups: BTreeMap<String, BTreeMap<u32, u64>> =
        serde_json::from_value(served["groups"].clone()).unwrap();
    assert_eq!(served_groups, groups);
    assert_eq!(served["fsync"], "always");
    for p in topic.partitions.clone() {
        assert_eq!(
            served["partitions"][p.partition as usize]["next_offset"],
            p.end
        );
        let original = on_disk(&data, "orders", p.partition, p.first, p.end);
        assert_eq!(original.len() as u64, p.records);
        let t = to2.clone();
        let got = blocking(move || read(t, "orders", p.partition, p.first, p.end)).await;
        assert_eq!(got.len(), original.len());
        for (g, o) in got.iter().zip(&original) {
            assert_eq!(
                (g.offset, g.timestamp_ms, &g.key, &g.labels, &g.value),
                (o.offset, o.timestamp_ms, &o.key, &o.labels, &o.value)
            );
        }
    }
    assert!(original_has_label("sub", &data, &topic.partitions[2]));
    b2.run_until(async {}).await;
    for p in &topic.partitions {
        let original = on_disk(&data, "orders", p.partition, p.first, p.end);
        let restored = on_disk(&data2, "orders", p.partition, p.first, p.end);
        let bytes = |rs: &[switchyard_codecs::record::Record]| -> Vec<u8> {
            rs.iter().flat_map(encoded).collect()
        };
        assert_eq!(bytes(&restored), bytes(&original), "orders/{}", p.partition);
    }
}

/// Whether some record of the partition carries a stored label named `name`.
fn original_has_label(
    name: &str,
    data: &std::path::Path,
    p: &switchyard::backup::manifest::PartitionEntry,
) -> bool {
    on_disk(data, "orders", p.partition, p.first, p.end)
        .iter()
        .any(|r| r.labels.get(name).is_some())
}

#[actix_rt::test]
async fn a_backup_restores_as_new_topics_into_a_running_broker() {
    let tmp = tempfile::tempdir().unwrap();
    let bdir = tmp.path().join("b");
    let a = broker(&tmp.path().join("a"), STORAGE).await;
    let to = Target::from(a.local_addr());
    let t = to.clone();
    blocking(move || {
        let mut c = Client::connect(t).unwrap();
        create(&mut c, "events", 2, "key_hash");
        publish(&mut c, "events", 0, 300, &[]);
        publish(&mut c, "events", 0, 200, &[("trace", "abc")]);
        publish(&mut c, "events", 1, 100, &[("sub", "kept")]);
        // One publish of 2500 records under one msg_id: restored as one publish (cut
        // at 1000 records, the broker would take the rest for duplicates of the first).
        publish(&mut c, "events", 1, 2500, &[("msg_id", "big-1")]);
        commit(&mut c, "events", "g", 0, 120);
    })
    .await;
    // Through the binary: the summary names the offsets copied.
    let addr = a.local_addr().to_string();
    let (out, err) = ok(
        &["backup", "--to", bdir.to_str().unwrap(), "--broker", &addr],
        b"",
    )
    .await;
    assert!(
        out.starts_with(&format!(
            "backed up 1 topics, 2 partitions, 3100 records to {}",
            bdir.display()
        )),
        "{out}"
    );
    assert!(
        out.trim_end()
            .ends_with("up to offsets events/0 0..500, events/1 0..2600"),
        "{out}"
    );
    assert!(
        err.contains("backup events/0: offsets 0..500, 500 records"),
        "{err}"
    );

    let b = broker(&tmp.path().join("b2"), STORAGE).await;
    let to2 = Target::from(b.local_addr());
    let (t, from) = (to2.clone(), bdir.clone());
    let m =
        blocking(move || restore_online(t, &from, log_config(), &mut Vec::new()).unwrap()).await;
    assert_eq!(m.records(), 3100);
    let t = to2.clone();
    let served = blocking(move || listed(t, "events")).await;
    assert_eq!(served["routing"], "key_hash");
    assert_eq!(served["groups"]["g"]["0"], 120);
    for (p, end) in [(0u32, 500u64), (1, 2600)] {
        let (t1, t2) = (to.clone(), to2.clone());
        let before = blocking(move || read(t1, "events", p, 0, end)).await;
        let after = blocking(move || read(t2, "events", p, 0, end)).await;
        assert_eq!(after.len(), before.len());
        for (x, y) in after.iter().zip(&before) {
            assert_eq!(
                (x.offset, &x.key, &x.labels, &x.value),
                (y.offset, &y.key, &y.labels, &y.value)
            );
        }
    }
    // The topic is there now: a second restore is refused, naming it.
    let (t, from) = (to2.clone(), bdir.clone());
    let again = blocking(move || restore_online(t, &from, log_config(), &mut Vec::new())).await;
    let why = again.unwrap_err().to_string();
    assert!(why.contains("topic `events` exists on the broker"), "{why}");
    a.run_until(async {}).await;
    b.run_until(async {}).await;
}

#[actix_rt::test]
async fn refusals_name_what_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, bdir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a = broker(&data, STORAGE).await;
    let to = Target::from(a.local_addr());
    let t = to.clone();
    blocking(move || {
        let mut c = Client::connect(t).unwrap();
        create(&mut c, "orders", 1, "round_robin");
        publish(&mut c, "orders", 0, 50, &[]);
    })
    .await;
    let (t, o) = (to.clone(), options(&bdir, &["orders"]));
    blocking(move || backup(t, &o, &mut Vec::new()).unwrap()).await;
    // A second backup into the same dir.
    let (t, o) = (to.clone(), options(&bdir, &["orders"]));
    let why = blocking(move || backup(t, &o, &mut Vec::new()))
        .await
        .unwrap_err()
        .to_string();
    assert!(why.contains("holds a finished backup"), "{why}");
    // A data dir a broker runs on.
    let out = run(
        &[
            "restore",
            "--from",
            bdir.to_str().unwrap(),
            "--dir",
            data.to_str().unwrap(),
        ],
        b"",
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use by a running broker"), "{err}");
    // Nor does a broker in another process start on it.
    let cfg = tmp.path().join("second.toml");
    let text = format!(
        "[broker]\nbind = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\n",
        data.display()
    );
    std::fs::write(&cfg, text).unwrap();
    let second = run(&["-c", cfg.to_str().unwrap()], b"").await;
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("is in use by a running broker"), "{err}");
    a.run_until(async {}).await;
    // Stopped, but the topic is there: only with --force.
    let r = |force| RestoreOptions {
        from: bdir.clone(),
        data_dir: data.clone(),
        force,
        log: log_config(),
    };
    let why = restore_dir(&r(false), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        why.contains("topic `orders` exists in") && why.contains("--force"),
        "{why}"
    );
    assert_eq!(
        restore_dir(&r(true), &mut Vec::new()).unwrap().records(),
        50
    );
    // A dir without a manifest is not a backup.
    std::fs::remove_file(bdir.join("backup.json")).unwrap();
    let why = restore_dir(&r(true), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(why.contains("not a finished backup"), "{why}");
    let why = restore_dir(&r(true), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(why.contains("not a finished backup"), "{why}");
    std::fs::write(bdir.join("backup.json"), b"{}").unwrap();
    let why = restore_dir(&r(true), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(why.contains("backup.json: missing field"), "{why}");

    // A login without the permissions: the refusal names the operation.
    let a = broker(&data, STORAGE).await;
    let (t, bdir2) = (Target::from(a.local_addr()), tmp.path().join("b2"));
    let o = options(&bdir2, &["orders"]);
    blocking(move || backup(t, &o, &mut Vec::new()).unwrap()).await;
    let users = common::auth::section(
        "",
        &[
            (
                "reader",
                "pw",
                "publish = [\">\"]\nsubscribe = [\"orders\"]",
            ),
            (
                "root",
                "pw",
                "publish = [\">\"]\nsubscribe = [\">\"]\nadmin = true",
            ),
        ],
    );
    let y = broker(&tmp.path().join("y"), &format!("{STORAGE}{users}")).await;
    let login = |user: &str| Target {
        login: Some(switchyard::client::Login::Password {
            user: user.into(),
            password: "pw".into(),
        }),
        ..Target::from(y.local_addr())
    };
    let (root, reader) = (login("root"), login("reader"));
    blocking(move || {
        create(
            &mut Client::connect(root).unwrap(),
            "secret",
            1,
            "round_robin",
        )
    })
    .await;
    let (t, o) = (reader.clone(), options(&tmp.path().join("s"), &["secret"]));
    let why = blocking(move || backup(t, &o, &mut Vec::new()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        why.contains("permission denied: subscribe topic `secret`"),
        "{why}"
    );
    let why = blocking(move || restore_online(reader, &bdir2, log_config(), &mut Vec::new()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        why.contains("permission denied: create topic `orders`"),
        "{why}"
    );
    a.run_until(async {}).await;
    y.run_until(async {}).await;
}

/// A partition whose oldest records retention removed: the backup starts at its first
/// retained offset; a restored data dir keeps the offsets, a restore into a running
/// broker numbers them from 0 and shifts the group offsets the same way.
#[actix_rt::test]
async fn a_partition_trimmed_by_retention_keeps_its_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let (bdir, data2) = (tmp.path().join("b"), tmp.path().join("c"));
    let retention = format!("{STORAGE}retention_bytes = 200000\nretention_check_ms = 10\n");
    let a = broker(&tmp.path().join("a"), &retention).await;
    let to = Target::from(a.local_addr());
    let t = to.clone();
    blocking(move || {
        let mut c = Client::connect(t).unwrap();
        create(&mut c, "logs", 1, "round_robin");
        for _ in 0..12 {
            publish(&mut c, "logs", 0, 500, &[]);
        }
        commit(&mut c, "logs", "g", 0, 5000);
    })
    .await;
    // Retention has run when the start offset is past 0 and stays put.
    let mut first = 0;
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let t = to.clone();
        let now = blocking(move || {
            listed(t, "logs")["partitions"][0]["start_offset"]
                .as_u64()
                .unwrap()
        })
        .await;
        if now > 0 && now == first {
            break;
        }
        first = now;
    }
    assert!(
        first > 0 && first < 5000,
        "retention removed the oldest segments: {first}"
    );
    let (t, o) = (to.clone(), options(&bdir, &["logs"]));
    let m = blocking(move || backup(t, &o, &mut Vec::new()).unwrap()).await;
    let p = m.topics[0].partitions[0];
    assert_eq!((p.first, p.end, p.records), (first, 6000, 6000 - first));
    let t = to.clone();
    let original = blocking(move || read(t, "logs", 0, first, 6000)).await;
    a.run_until(async {}).await;

    let r = RestoreOptions {
        from: bdir.clone(),
        data_dir: data2.clone(),
        force: false,
        log: log_config(),
    };
    restore_dir(&r, &mut Vec::new()).unwrap();
    let b = broker(&data2, STORAGE).await;
    let to2 = Target::from(b.local_addr());
    let t = to2.clone();
    let served = blocking(move || listed(t, "logs")).await;
    assert_eq!(served["partitions"][0]["start_offset"], first);
    assert_eq!(served["partitions"][0]["next_offset"], 6000);
    assert_eq!(served["groups"]["g"]["0"], 5000);
    let t = to2.clone();
    let restored = blocking(move || read(t, "logs", 0, first, 6000)).await;
    let offsets = |v: &[DeliveredItem]| {
        v.first()
            .zip(v.last())
            .map(|(a, b)| (a.offset, b.offset, v.len()))
    };
    assert_eq!(offsets(&restored), offsets(&original));
    assert!(restored == original, "the restored records differ");
    b.run_until(async {}).await;

    let c = broker(&tmp.path().join("d"), STORAGE).await;
    let to3 = Target::from(c.local_addr());
    let (t, from) = (to3.clone(), bdir.clone());
    blocking(move || restore_online(t, &from, log_config(), &mut Vec::new()).unwrap()).await;
    let t = to3.clone();
    let served = blocking(move || listed(t, "logs")).await;
    assert_eq!(served["partitions"][0]["next_offset"], 6000 - first);
    assert_eq!(served["groups"]["g"]["0"], 5000 - first);
    let t = to3.clone();
    let renumbered = blocking(move || read(t, "logs", 0, 0, 6000 - first)).await;
    for (x, y) in renumbered.iter().zip(&original) {
        assert_eq!(
            (x.offset + first, &x.key, &x.value),
            (y.offset, &y.key, &y.value)
        );
    }
    assert_eq!(renumbered.len(), original.len());
    c.run_until(async {}).await;
}

/// Over TLS, as every client command: the built binary with `--tls --ca`.
#[actix_rt::test]
async fn a_backup_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = common::tls::Pki::new();
    let extra = format!("{STORAGE}{}", pki.section(false));
    let cfg = common::cli::config_at(&tmp.path().join("a"), "127.0.0.1:0", &extra);
    let mut cfg = cfg;
    cfg.broker.tls = true;
    let a = switchyard::start(&cfg).await.unwrap();
    let to = a.local_addr().to_string();
    let (dir, ca) = (
        tmp.path().join("b"),
        pki.ca_file.to_str().unwrap().to_string(),
    );
    let args = [
        "backup",
        "--to",
        dir.to_str().unwrap(),
        "--broker",
        &to,
        "--tls",
        "--ca",
        &ca,
    ];
    let plain = common::cli::run(&args[..6], b"").await;
    assert!(!plain.status.success(), "a plain client is not served");
    std::fs::remove_dir_all(&dir).ok();
    // No topic yet: refused, with nothing to copy.
    let none = common::cli::run(&args, b"").await;
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(err.contains("nothing to back up"), "{err}");
    common::cli::ok(
        &["pub", "t", "one", "--broker", &to, "--tls", "--ca", &ca],
        b"",
    )
    .await;
    let (out, _) = common::cli::ok(&args, b"").await;
    assert!(out.contains("1 topics, 1 partitions, 1 records"), "{out}");
    a.run_until(async {}).await;
}
