//! The supervisor restarts children that stop and children that panic, backs off,
//! and gives up past its policy; counts asserted in the manner of actix's own
//! `test_supervisor.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use switchyard_actors::supervisor::{AddChild, Status};
use switchyard_actors::{
    ActorTree, ChildContext, ChildGuard, ChildSpec, ChildState, ChildStatus, ExitReason,
    RestartPolicy, Shutdown, Supervisor, TreeEntry,
};

struct Worker {
    guard: ChildGuard,
    _entry: TreeEntry,
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
}

impl Actor for Worker {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        self.starts.fetch_add(1, SeqCst);
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.stops.fetch_add(1, SeqCst);
        self.guard.stopped();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Boom;

#[derive(Message)]
#[rtype(result = "()")]
struct Quit;

impl Handler<Boom> for Worker {
    type Result = ();
    fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
        panic!("boom");
    }
}

impl Handler<Quit> for Worker {
    type Result = ();
    fn handle(&mut self, _: Quit, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Shutdown> for Worker {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[derive(Clone, Default)]
struct Probe {
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
    current: Arc<Mutex<Option<Addr<Worker>>>>,
    fail_starts: Arc<AtomicUsize>,
}

impl Probe {
    fn spec(&self) -> ChildSpec {
        let p = self.clone();
        ChildSpec::new("worker", "w", move |cx: ChildContext| {
            if p.fail_starts.load(SeqCst) > 0 {
                p.fail_starts.fetch_sub(1, SeqCst);
                return Err("cannot start".into());
            }
            let entry = cx.tree.register(Some(cx.parent), "worker", "w");
            let addr = Worker {
                guard: cx.guard,
                _entry: entry,
                starts: p.starts.clone(),
                stops: p.stops.clone(),
            }
            .start();
            *p.current.lock().unwrap() = Some(addr.clone());
            Ok(addr.recipient())
        })
    }

    fn current(&self) -> Addr<Worker> {
        self.current.lock().unwrap().clone().unwrap()
    }

    async fn wait_starts(&self, n: usize) {
        for _ in 0..500 {
            if self.starts.load(SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("expected {n} starts, saw {}", self.starts.load(SeqCst));
    }
}

fn policy(max_restarts: u32) -> RestartPolicy {
    RestartPolicy {
        max_restarts,
        within: Duration::from_secs(30),
        backoff: Duration::from_millis(1),
        backoff_max: Duration::from_millis(20),
    }
}

async fn status(sup: &Addr<Supervisor>) -> ChildStatus {
    sup.send(Status).await.unwrap().remove(0)
}

async fn settle(sup: &Addr<Supervisor>, state: ChildState) -> ChildStatus {
    for _ in 0..500 {
        let s = status(sup).await;
        if s.state == state {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("child never reached {state:?}: {:?}", status(sup).await);
}

#[actix_rt::test]
async fn panicking_child_is_restarted_with_the_reason() {
    let tree = ActorTree::new();
    let sup = Supervisor::new(tree.clone(), "root", policy(3)).start();
    let probe = Probe::default();
    sup.send(AddChild(probe.spec())).await.unwrap();
    probe.wait_starts(1).await;
    assert_eq!(tree.paths_of("worker"), vec!["root/worker:w"]);

    assert!(
        probe.current().send(Boom).await.is_err(),
        "the panicking handler never answers"
    );
    probe.wait_starts(2).await;
    let s = settle(&sup, ChildState::Running).await;
    assert_eq!((s.starts, s.restarts), (2, 1));
    assert!(
        matches!(&s.last_exit, Some(ExitReason::Panicked(m)) if m.contains("boom")),
        "{:?}",
        s.last_exit
    );
    // actix runs `stopped` while dropping a panicked actor; the guard still reports
    // the panic, because it was dropped in the task that panicked.
    assert_eq!(probe.stops.load(SeqCst), 1);
    assert_eq!(
        tree.paths_of("worker"),
        vec!["root/worker:w"],
        "the dead child left the tree, the new one joined"
    );
}

#[actix_rt::test]
async fn stopped_child_is_restarted() {
    let sup = Supervisor::new(ActorTree::new(), "root", policy(3)).start();
    let probe = Probe::default();
    sup.send(AddChild(probe.spec())).await.unwrap();
    probe.wait_starts(1).await;
    probe.current().send(Quit).await.unwrap();
    probe.wait_starts(2).await;
    let s = settle(&sup, ChildState::Running).await;
    assert_eq!((s.starts, s.restarts), (2, 1));
    assert_eq!(s.last_exit, Some(ExitReason::Stopped));
    assert_eq!(probe.stops.load(SeqCst), 1);
}

#[actix_rt::test]
async fn child_crashing_past_the_policy_is_given_up() {
    let tree = ActorTree::new();
    let sup = Supervisor::new(tree.clone(), "root", policy(2)).start();
    let probe = Probe::default();
    sup.send(AddChild(probe.spec())).await.unwrap();
    for n in 1..=3 {
        probe.wait_starts(n).await;
        settle(&sup, ChildState::Running).await;
        let _ = probe.current().send(Boom).await;
    }
    let s = settle(&sup, ChildState::Failed).await;
    assert_eq!(
        (s.starts, s.restarts),
        (3, 2),
        "initial start plus max_restarts"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(probe.starts.load(SeqCst), 3, "no restart after giving up");
    assert!(tree.paths_of("worker").is_empty());
    assert!(tree.render().contains("1 failed"), "{}", tree.render());
}

#[actix_rt::test]
async fn failed_starts_are_retried_then_given_up() {
    let sup = Supervisor::new(ActorTree::new(), "root", policy(2)).start();
    let probe = Probe::default();
    probe.fail_starts.store(1, SeqCst);
    sup.send(AddChild(probe.spec())).await.unwrap();
    probe.wait_starts(1).await;
    let s = settle(&sup, ChildState::Running).await;
    assert_eq!((s.starts, s.restarts), (2, 1));

    let sup = Supervisor::new(ActorTree::new(), "root", policy(2)).start();
    let probe = Probe::default();
    probe.fail_starts.store(10, SeqCst);
    sup.send(AddChild(probe.spec())).await.unwrap();
    let s = settle(&sup, ChildState::Failed).await;
    assert_eq!((s.starts, s.restarts), (3, 2));
    assert!(matches!(s.last_exit, Some(ExitReason::StartFailed(_))));
}

#[actix_rt::test]
async fn shutdown_stops_children_without_restarting() {
    let sup = Supervisor::new(ActorTree::new(), "root", policy(3)).start();
    let probe = Probe::default();
    sup.send(AddChild(probe.spec())).await.unwrap();
    probe.wait_starts(1).await;
    sup.send(Shutdown).await.unwrap();
    let s = settle(&sup, ChildState::Stopped).await;
    assert_eq!((s.starts, s.restarts), (1, 0));
    assert_eq!(probe.stops.load(SeqCst), 1);
}

#[test]
fn backoff_doubles_up_to_the_ceiling() {
    let p = RestartPolicy {
        max_restarts: 10,
        within: Duration::from_secs(60),
        backoff: Duration::from_millis(100),
        backoff_max: Duration::from_millis(1000),
    };
    let delays: Vec<u128> = (1..=6).map(|n| p.delay(n).as_millis()).collect();
    assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    assert_eq!(p.delay(200), Duration::from_millis(1000));
}
