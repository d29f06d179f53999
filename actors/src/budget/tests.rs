//! The budget's accounting and shedding, without sockets.

use super::*;

#[test]
fn input_grows_freely_to_the_free_amount_then_only_with_room() {
    let b = Arc::new(MemoryBudget::new(100 << 10));
    let mut a = Held::new(b.clone());
    assert!(a.grow(60 << 10, FREE_INPUT_BYTES));
    let mut c = Held::new(b.clone());
    assert!(c.grow(64 << 10, FREE_INPUT_BYTES), "free up to 64 KiB");
    assert_eq!(b.in_use(), 124 << 10);
    assert!(
        !c.grow(65 << 10, FREE_INPUT_BYTES),
        "no room past the limit"
    );
    assert_eq!(c.bytes(), 64 << 10);
    a.force(0);
    assert!(c.grow(90 << 10, FREE_INPUT_BYTES));
    drop(c);
    assert_eq!(b.in_use(), 0);
    assert_eq!(b.snapshot().peak, 124 << 10);
}

#[test]
fn a_window_releases_what_it_holds_when_closed_and_ignores_late_charges() {
    let b = Arc::new(MemoryBudget::new(1000));
    let w = Window::new(b.clone(), 500);
    w.charge(400);
    assert!(w.has_room());
    w.charge(200);
    assert!(!w.has_room());
    w.starve();
    assert!(!w.take_starved(), "still full");
    w.release(300);
    assert!(w.take_starved());
    assert!(!w.take_starved(), "once");
    assert_eq!(b.snapshot().output, 300);
    w.close();
    w.charge(50);
    assert_eq!((b.in_use(), b.snapshot().output), (0, 0));
}

#[actix::test]
async fn past_the_limit_the_largest_holder_of_unasked_output_is_shed() {
    struct Sink(Arc<Mutex<Vec<u64>>>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<Shed> for Sink {
        type Result = ();
        fn handle(&mut self, s: Shed, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(s.held);
        }
    }
    let got = Arc::new(Mutex::new(Vec::new()));
    let b = Arc::new(MemoryBudget::new(1000));
    let reader = Window::new(b.clone(), 2000);
    let (small, big) = (Window::new(b.clone(), 2000), Window::new(b.clone(), 2000));
    for w in [&reader, &small, &big] {
        w.register(Sink(got.clone()).start().recipient());
    }
    // Records and answers (paced output) are never a reason to shed.
    reader.charge(1200);
    assert_eq!(b.snapshot().shed, 0, "only paced output");
    reader.release(1200);
    small.set_unasked(300);
    small.charge(300);
    big.set_unasked(200);
    big.charge(600);
    assert_eq!(b.snapshot().shed, 0, "under the limit");
    reader.charge(500);
    assert_eq!(b.snapshot().shed, 1, "one shed covers the excess");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(
        *got.lock().unwrap(),
        [300],
        "the most unasked, not the most held"
    );
    small.close();
    assert_eq!(b.in_use(), 1100);
    // With no unasked output left, a holder is closed only once its output has not
    // moved for STALLED: a reader that reads keeps its place.
    big.set_unasked(0);
    big.release(1);
    reader.charge(10);
    assert_eq!(b.snapshot().shed, 1, "nothing has stalled yet");
    tokio::time::sleep(STALLED + std::time::Duration::from_millis(100)).await;
    reader.release(5);
    reader.charge(1);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(b.snapshot().shed, 2);
    assert_eq!(
        *got.lock().unwrap(),
        [300, 599],
        "the stalled holder, not the reader"
    );
}
