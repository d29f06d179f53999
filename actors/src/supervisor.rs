//! The root supervisor: starts children from specs and restarts them under a policy.
//!
//! actix's own `Supervisor` restarts an actor only when it stops itself; a panic kills
//! it silently. Here every child holds a [`ChildGuard`] whose `Drop` reports the exit,
//! so a child that stops *and* a child that panics are both seen and restarted, with
//! exponential back-off, until more than `max_restarts` happen within `within`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use crate::panic_note;
use crate::tree::{ActorId, ActorTree, TreeEntry};

/// When to give up on a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `within`; one more and the child is given up.
    pub max_restarts: u32,
    pub within: Duration,
    /// Delay before the first restart in a window; doubles with each further one.
    pub backoff: Duration,
    /// Ceiling for the doubled delay.
    pub backoff_max: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            within: Duration::from_secs(60),
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

impl RestartPolicy {
    /// The delay before restart number `n` (1-based) of the current window.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.backoff_max)
    }
}

/// Asks a child (or the supervisor) to finish its work and stop; answered when done.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Why a child exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "lowercase")]
pub enum ExitReason {
    /// The actor stopped (its `stopped` hook ran).
    Stopped,
    /// The actor was dropped without stopping: it panicked.
    Panicked(String),
    /// Its start function failed.
    StartFailed(String),
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Stopped => f.write_str("stopped"),
            ExitReason::Panicked(m) => write!(f, "panicked: {m}"),
            ExitReason::StartFailed(m) => write!(f, "start failed: {m}"),
        }
    }
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct ChildExited {
    slot: usize,
    generation: u64,
    reason: ExitReason,
}

/// Held by a supervised actor for its whole life; its `Drop` reports the exit. Call
/// [`ChildGuard::stopped`] from the actor's `stopped` hook: a guard dropped without
/// that call, or dropped in a task that has just panicked, reports a panic.
#[derive(Debug)]
pub struct ChildGuard {
    notify: Recipient<ChildExited>,
    slot: usize,
    generation: u64,
    stopped: bool,
}

impl ChildGuard {
    pub fn stopped(&mut self) {
        self.stopped = true;
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let reason = match panic_note::take_for_current_task() {
            Some(message) => ExitReason::Panicked(message),
            None if self.stopped => ExitReason::Stopped,
            None => ExitReason::Panicked("dropped without stopping".into()),
        };
        let msg = ChildExited {
            slot: self.slot,
            generation: self.generation,
            reason,
        };
        if let Err(e) = self.notify.try_send(msg) {
            tracing::debug!(error = %e, "supervisor gone, child exit not reported");
        }
    }
}

/// What a child's start function receives.
#[derive(Debug)]
pub struct ChildContext {
    pub guard: ChildGuard,
    pub tree: ActorTree,
    /// The supervisor's id in the tree: the child's parent.
    pub parent: ActorId,
}

type StartFn = Box<dyn Fn(ChildContext) -> Result<Recipient<Shutdown>, String> + Send>;

/// How to start (and restart) one child.
pub struct ChildSpec {
    pub kind: &'static str,
    pub name: String,
    start: StartFn,
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish()
    }
}

impl ChildSpec {
    pub fn new(
        kind: &'static str,
        name: impl Into<String>,
        start: impl Fn(ChildContext) -> Result<Recipient<Shutdown>, String> + Send + 'static,
    ) -> Self {
        ChildSpec {
            kind,
            name: name.into(),
            start: Box::new(start),
        }
    }
}

/// A child's state, as [`Status`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildState {
    Running,
    Restarting,
    Failed,
    Stopped,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChildStatus {
    pub kind: &'static str,
    pub name: String,
    pub state: ChildState,
    pub starts: u64,
    pub restarts: u64,
    pub last_exit: Option<ExitReason>,
}

/// Asks for every child's status.
#[derive(Debug, Message)]
#[rtype(result = "Vec<ChildStatus>")]
pub struct Status;

/// Adds a child and starts it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AddChild(pub ChildSpec);

struct Slot {
    kind: &'static str,
    name: String,
    /// Dropped at shutdown, with whatever the spec holds (a bound socket).
    start: Option<StartFn>,
    generation: u64,
    state: ChildState,
    running: Option<Recipient<Shutdown>>,
    recent: VecDeque<Instant>,
    starts: u64,
    restarts: u64,
    last_exit: Option<ExitReason>,
}

/// The root of the actor tree.
pub struct Supervisor {
    policy: RestartPolicy,
    tree: ActorTree,
    entry: TreeEntry,
    slots: Vec<Slot>,
    shutting_down: bool,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("path", &self.entry.path())
            .field("children", &self.slots.len())
            .finish()
    }
}

impl Supervisor {
    /// A supervisor registered in `tree` as `name` (the root is called `root`).
    pub fn new(tree: ActorTree, name: &str, policy: RestartPolicy) -> Self {
        panic_note::install();
        let entry = tree.register(None, "supervisor", name);
        Supervisor {
            policy,
            tree,
            entry,
            slots: Vec::new(),
            shutting_down: false,
        }
    }

    fn start_child(&mut self, slot: usize, ctx: &mut Context<Self>) {
        let recipient = ctx.address().recipient();
        let parent = self.entry.id();
        let tree = self.tree.clone();
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(start) = s.start.take() else { return };
        s.generation += 1;
        s.starts += 1;
        let guard = ChildGuard {
            notify: recipient,
            slot,
            generation: s.generation,
            stopped: false,
        };
        let result = start(ChildContext {
            guard,
            tree,
            parent,
        });
        s.start = Some(start);
        match result {
            Ok(r) => {
                s.state = ChildState::Running;
                s.running = Some(r);
            }
            Err(e) => {
                // The guard went down with the context and reports a panic; moving to
                // the next generation makes that report stale, and this one counts.
                s.generation += 1;
                let generation = s.generation;
                self.on_exit(slot, generation, ExitReason::StartFailed(e), ctx);
            }
        }
        self.update_detail();
    }

    fn on_exit(
        &mut self,
        slot: usize,
        generation: u64,
        reason: ExitReason,
        ctx: &mut Context<Self>,
    ) {
        let policy = self.policy;
        let shutting_down = self.shutting_down;
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        if s.generation != generation {
            return;
        }
        s.running = None;
        if shutting_down {
            s.state = ChildState::Stopped;
            s.last_exit = Some(reason);
            self.update_detail();
            return;
        }
        let now = Instant::now();
        while s
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.within)
        {
            s.recent.pop_front();
        }
        if s.recent.len() >= policy.max_restarts as usize {
            tracing::error!(
                child = %format!("{}:{}", s.kind, s.name), reason = %reason, restarts = s.restarts,
                max_restarts = policy.max_restarts, within_ms = policy.within.as_millis() as u64,
                "child given up: too many restarts"
            );
            s.state = ChildState::Failed;
            s.last_exit = Some(reason);
            self.update_detail();
            return;
        }
        s.recent.push_back(now);
        s.restarts += 1;
        let delay = policy.delay(s.recent.len() as u32);
        tracing::warn!(
            child = %format!("{}:{}", s.kind, s.name), reason = %reason, restart = s.restarts,
            delay_ms = delay.as_millis() as u64, "restarting child"
        );
        s.state = ChildState::Restarting;
        s.last_exit = Some(reason);
        let expected = s.generation;
        ctx.run_later(delay, move |act, ctx| {
            let still = act
                .slots
                .get(slot)
                .is_some_and(|s| s.generation == expected && s.state == ChildState::Restarting);
            if still && !act.shutting_down {
                act.start_child(slot, ctx);
            }
        });
        self.update_detail();
    }

    fn update_detail(&self) {
        let count = |st| self.slots.iter().filter(|s| s.state == st).count();
        let restarts: u64 = self.slots.iter().map(|s| s.restarts).sum();
        let mut detail = format!("{} running", count(ChildState::Running));
        for (label, st) in [
            ("restarting", ChildState::Restarting),
            ("failed", ChildState::Failed),
        ] {
            let n = count(st);
            if n > 0 {
                detail.push_str(&format!(", {n} {label}"));
            }
        }
        if restarts > 0 {
            detail.push_str(&format!(", {restarts} restarts"));
        }
        self.entry.set_detail(detail);
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<AddChild> for Supervisor {
    type Result = ();

    fn handle(&mut self, AddChild(spec): AddChild, ctx: &mut Self::Context) {
        if self.shutting_down {
            return;
        }
        self.slots.push(Slot {
            kind: spec.kind,
            name: spec.name,
            start: Some(spec.start),
            generation: 0,
            state: ChildState::Restarting,
            running: None,
            recent: VecDeque::new(),
            starts: 0,
            restarts: 0,
            last_exit: None,
        });
        self.start_child(self.slots.len() - 1, ctx);
    }
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        self.on_exit(msg.slot, msg.generation, msg.reason, ctx);
    }
}

impl Handler<Status> for Supervisor {
    type Result = MessageResult<Status>;

    fn handle(&mut self, _: Status, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.slots
                .iter()
                .map(|s| ChildStatus {
                    kind: s.kind,
                    name: s.name.clone(),
                    state: s.state,
                    starts: s.starts,
                    restarts: s.restarts,
                    last_exit: s.last_exit.clone(),
                })
                .collect(),
        )
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    /// Stops restarting, closes what the specs hold, then asks every running child to
    /// shut down, last started first, and answers when all have.
    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.shutting_down = true;
        let mut running = Vec::new();
        for s in self.slots.iter_mut().rev() {
            s.start = None;
            if s.state == ChildState::Restarting {
                s.state = ChildState::Stopped;
            }
            if let Some(r) = s.running.clone() {
                running.push(r);
            }
        }
        Box::pin(
            async move {
                for r in running {
                    // An error means the child is already gone, which is what we want.
                    let _ = r.send(Shutdown).await;
                }
            }
            .into_actor(self),
        )
    }
}
