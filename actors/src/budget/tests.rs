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
async fn past_the_limit_the_largest_output_holder_is_shed() {
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
    let (small, big) = (Window::new(b.clone(), 2000), Window::new(b.clone(), 2000));
    small.register(Sink(got.clone()).start().recipient());
    big.register(Sink(got.clone()).start().recipient());
    small.charge(300);
    big.charge(600);
    assert_eq!(b.snapshot().shed, 0, "under the limit");
    big.charge(200);
    small.charge(100);
    assert_eq!(b.snapshot().shed, 1, "one shed covers the excess");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(*got.lock().unwrap(), [800]);
    big.close();
    assert_eq!(b.in_use(), 400);
}
