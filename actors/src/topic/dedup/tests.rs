use super::*;

fn published(partition: u32, first_offset: u64, count: u64) -> Published {
    Published {
        partition,
        first_offset,
        count,
        duplicate: false,
    }
}

fn index(window_ms: u64, max_ids: usize) -> DedupIndex {
    DedupIndex::new(DedupSettings { window_ms, max_ids })
}

fn id(s: &str) -> Id {
    Id::from(s.as_bytes())
}

#[test]
fn a_duplicate_in_the_window_gets_the_first_answer() {
    let mut ix = index(1000, 10);
    assert!(matches!(ix.begin("t", &id("a"), 100), Lookup::Fresh));
    assert_eq!(ix.settle("t", &id("a"), 100, &Ok(published(2, 40, 3))), 0);
    match ix.begin("t", &id("a"), 1099) {
        Lookup::Duplicate(p) => {
            assert_eq!((p.partition, p.first_offset, p.count), (2, 40, 3));
            assert!(p.duplicate);
        }
        other => panic!("{other:?}"),
    }
    // Per topic: the same id elsewhere is another publish.
    assert!(matches!(ix.begin("u", &id("a"), 200), Lookup::Fresh));
    // At the end of the window it is a fresh publish again.
    assert!(matches!(ix.begin("t", &id("a"), 1100), Lookup::Fresh));
    assert_eq!(ix.stats().duplicates, 1);
}

#[test]
fn duplicates_wait_for_the_first_and_share_its_answer_or_error() {
    let mut ix = index(1000, 10);
    assert!(matches!(ix.begin("t", &id("a"), 1), Lookup::Fresh));
    let Lookup::Wait(mut rx) = ix.begin("t", &id("a"), 2) else {
        panic!("a duplicate of an id in flight waits")
    };
    assert!(rx.try_recv().is_err(), "answered before the first was");
    ix.settle("t", &id("a"), 1, &Ok(published(0, 7, 1)));
    let got = rx.try_recv().unwrap().unwrap();
    assert_eq!((got.first_offset, got.duplicate), (7, true));
    assert_eq!(
        ix.stats(),
        DedupStats {
            ids: 1,
            duplicates: 1,
            evictions: 0
        }
    );

    // A first that failed: its waiter gets the error, and a retry is fresh.
    assert!(matches!(ix.begin("t", &id("b"), 3), Lookup::Fresh));
    let Lookup::Wait(mut rx) = ix.begin("t", &id("b"), 3) else {
        panic!()
    };
    let err = TopicError::Partition("disk full".into());
    ix.settle("t", &id("b"), 3, &Err(err.clone()));
    assert_eq!(rx.try_recv().unwrap(), Err(err));
    assert!(matches!(ix.begin("t", &id("b"), 4), Lookup::Fresh));
    assert_eq!(ix.stats().ids, 1);
}

#[test]
fn a_full_index_evicts_the_oldest_and_counts_it() {
    let mut ix = index(60_000, 3);
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        assert!(matches!(ix.begin("t", &id(name), i as u64), Lookup::Fresh));
        ix.settle("t", &id(name), i as u64, &Ok(published(0, i as u64, 1)));
    }
    assert_eq!(ix.stats().ids, 3);
    assert_eq!(ix.stats().evictions, 2);
    // The oldest two went before their window; the newest three are still known.
    assert!(matches!(ix.begin("t", &id("a"), 10), Lookup::Fresh));
    assert!(matches!(ix.begin("t", &id("c"), 10), Lookup::Duplicate(_)));
    assert!(matches!(ix.begin("t", &id("e"), 10), Lookup::Duplicate(_)));
}

#[test]
fn expiry_forgets_by_age_without_counting_evictions() {
    let mut ix = index(100, 10);
    for (name, at) in [("a", 0), ("b", 50), ("c", 90)] {
        assert!(matches!(ix.begin("t", &id(name), at), Lookup::Fresh));
        ix.settle("t", &id(name), at, &Ok(published(0, at, 1)));
    }
    ix.expire(140);
    assert_eq!(ix.stats().ids, 2);
    ix.expire(1000);
    assert_eq!(
        ix.stats(),
        DedupStats {
            ids: 0,
            duplicates: 0,
            evictions: 0
        }
    );
    // Remembered again after it expired: the newer entry is the one that counts.
    assert!(matches!(ix.begin("t", &id("a"), 2000), Lookup::Fresh));
    ix.settle("t", &id("a"), 2000, &Ok(published(1, 5, 1)));
    ix.expire(2050);
    assert!(matches!(ix.begin("t", &id("a"), 2060), Lookup::Duplicate(p) if p.partition == 1));
}

#[test]
fn restored_records_of_one_publish_make_one_entry() {
    let mut ix = index(1000, 10);
    // A batch of three at offsets 4-6, then a single record with another id.
    for off in 4..7 {
        ix.restore("t", id("batch"), 1, off, 500);
    }
    ix.restore("t", id("one"), 1, 7, 500);
    // The same id again later (the first was out of the window): the later one wins.
    ix.restore("t", id("again"), 0, 0, 100);
    ix.restore("t", id("again"), 0, 9, 700);
    match ix.begin("t", &id("batch"), 600) {
        Lookup::Duplicate(p) => assert_eq!((p.partition, p.first_offset, p.count), (1, 4, 3)),
        other => panic!("{other:?}"),
    }
    match ix.begin("t", &id("again"), 800) {
        Lookup::Duplicate(p) => assert_eq!((p.first_offset, p.count), (9, 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(ix.stats().ids, 3);
}

#[test]
fn a_deleted_topic_forgets_its_ids_and_drops_its_waiters() {
    let mut ix = index(1000, 10);
    ix.begin("t", &id("a"), 1);
    ix.settle("t", &id("a"), 1, &Ok(published(0, 0, 1)));
    ix.begin("t", &id("b"), 1);
    let Lookup::Wait(mut rx) = ix.begin("t", &id("b"), 1) else {
        panic!()
    };
    ix.forget_topic("t");
    assert_eq!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed));
    assert_eq!(ix.stats().ids, 0);
    assert!(matches!(ix.begin("t", &id("a"), 2), Lookup::Fresh));
}

#[test]
fn msg_ids_are_1_to_256_bytes() {
    assert!(check_msg_id(b"x").is_ok());
    assert!(check_msg_id(&[b'x'; 256]).is_ok());
    assert_eq!(
        check_msg_id(&[b'x'; 257]).unwrap_err().to_string(),
        "label msg_id: 1 to 256 bytes, not 257"
    );
    assert!(check_msg_id(b"").is_err());
}
