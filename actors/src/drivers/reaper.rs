//! No process a driver starts outlives it. The broker is a child subreaper, so what a
//! driver leaves behind (even after `setsid` or a double fork) is re-parented to the
//! broker instead of to init. Every driver process carries a mark in its environment,
//! inherited by all it starts: when the driver exits, every live process with its mark
//! gets SIGTERM, then SIGKILL after the grace, and those re-parented to the broker are
//! reaped. While it runs, its orphans that exit are reaped too.
//!
//! Reaping takes only pids known to be a driver's orphans (`waitpid(pid, WNOHANG)`):
//! a blanket `waitpid(-1)` would steal the children tokio (or anyone else in the
//! process) waits for. The binary, which has no other children, may also reap zombies
//! it cannot attribute ([`reap_unknown_zombies`]): an orphan that exits before it was
//! seen has no environment left to read.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use tracing::{debug, warn};

/// The environment variable that marks a driver process and its descendants.
pub const MARK_VAR: &str = "SWITCHYARD_DRIVER_RUN";

/// How often a running driver's orphans are looked for.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Pids whose exit tokio waits for (the driver processes themselves): never reaped here.
static MANAGED: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
static REAP_UNKNOWN: AtomicBool = AtomicBool::new(false);
static NEXT_MARK: AtomicU64 = AtomicU64::new(1);

/// Makes this process the reaper of its orphaned descendants.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        warn!(error = %e, "cannot become a child subreaper; orphans of drivers go to init");
    }
}

/// For a process that has no children but its drivers (the binary): zombie children
/// that are not a driver process are reaped even when no driver's mark was seen on them.
pub fn reap_unknown_zombies(on: bool) {
    REAP_UNKNOWN.store(on, Ordering::SeqCst);
}

/// A fresh mark for one driver process.
pub fn new_mark() -> String {
    let n = NEXT_MARK.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

fn managed() -> std::sync::MutexGuard<'static, Option<HashSet<u32>>> {
    MANAGED.lock().unwrap_or_else(|p| p.into_inner())
}

/// `pid` is a process tokio waits for, until [`unmanage`].
pub fn manage(pid: u32) {
    managed().get_or_insert_with(HashSet::new).insert(pid);
}

pub fn unmanage(pid: u32) {
    if let Some(m) = managed().as_mut() {
        m.remove(&pid);
    }
}

/// A process's state letter and parent, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = s.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

/// Does the live process `pid` carry `mark`?
fn has_mark(pid: u32, needle: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|&b| b == 0).any(|kv| kv == needle))
        .unwrap_or(false)
}

fn needle(mark: &str) -> Vec<u8> {
    format!("{MARK_VAR}={mark}").into_bytes()
}

/// Every live process that carries `mark`.
fn marked(mark: &str) -> Vec<u32> {
    let needle = needle(mark);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && has_mark(pid, &needle))
        .collect()
}

/// This process's children, from every thread's `children` list (an orphan is given
/// to one of the subreaper's threads).
fn children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.filter_map(|e| e.ok()) {
        if let Ok(list) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Reaps `pid` if it is a zombie child of ours; `true` once it is gone.
fn reap(pid: u32) -> bool {
    match stat(pid) {
        None => true,
        Some(('Z', ppid)) if ppid == std::process::id() => {
            match waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
                Ok(_) => stat(pid).is_none(),
                Err(_) => true,
            }
        }
        Some(_) => false,
    }
}

/// Orphans of one driver process seen so far (pids re-parented to us that carry its mark).
#[derive(Debug, Default)]
pub struct Orphans(Mutex<HashSet<u32>>);

impl Orphans {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<u32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes our children with `mark`, and reaps those of them that exited.
    fn tend(&self, mark: &str) {
        let needle = needle(mark);
        let unknown = REAP_UNKNOWN.load(Ordering::SeqCst);
        for pid in children() {
            // The driver processes themselves are tokio's to wait for.
            if managed().as_ref().is_some_and(|m| m.contains(&pid)) {
                continue;
            }
            let known = self.set().contains(&pid);
            match stat(pid) {
                Some(('Z', _)) if known && reap(pid) => {
                    self.set().remove(&pid);
                }
                Some(('Z', _)) if known => {}
                Some(('Z', _)) if unknown => {
                    debug!(pid, "unattributed zombie child reaped");
                    reap(pid);
                }
                Some(_) if !known && has_mark(pid, &needle) => {
                    self.set().insert(pid);
                }
                _ => {}
            }
        }
    }
}

/// Runs a `/proc` scan on the blocking pool: reading every process's `environ` is file
/// I/O, and it must not hold up the arbiter the broker's actors run on.
async fn off_arbiter<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    actix_rt::task::spawn_blocking(f).await.ok()
}

/// Tends the orphans of `mark` off the arbiter.
async fn tend_off(mark: &str, orphans: &Arc<Orphans>) {
    let (m, o) = (mark.to_string(), orphans.clone());
    off_arbiter(move || o.tend(&m)).await;
}

/// The live processes with `mark`, found off the arbiter.
async fn marked_off(mark: &str) -> Vec<u32> {
    let m = mark.to_string();
    off_arbiter(move || marked(&m)).await.unwrap_or_default()
}

/// Reaps the orphans of the driver process with `mark` that exit while it runs
/// (until `exited`).
pub async fn tend(mark: String, exited: Arc<AtomicBool>, orphans: Arc<Orphans>) {
    while !exited.load(Ordering::SeqCst) {
        tokio::time::sleep(WATCH_EVERY).await;
        tend_off(&mark, &orphans).await;
    }
}

/// Once the driver process with `mark` has exited: every process with its mark gets
/// SIGTERM, and after `grace` SIGKILL; those re-parented to us are reaped.
pub async fn end_all(driver: &str, mark: &str, grace: Duration, orphans: &Arc<Orphans>) {
    let left = marked_off(mark).await;
    if left.is_empty() {
        tend_off(mark, orphans).await;
        return;
    }
    warn!(driver = %driver, processes = left.len(), "driver left processes behind, ending them");
    let mut known: HashSet<u32> = orphans.set().iter().copied().collect();
    known.extend(&left);
    signal(&left, Signal::SIGTERM);
    tokio::time::sleep(grace).await;
    // Whatever still runs (or was started meanwhile) is killed, until none is left.
    for _ in 0..50 {
        let alive = marked_off(mark).await;
        signal(&alive, Signal::SIGKILL);
        known.extend(&alive);
        known.retain(|&pid| !reap(pid));
        if alive.is_empty() && known.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    warn!(driver = %driver, pids = ?known, "driver's processes not all reaped");
}

fn signal(pids: &[u32], sig: Signal) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
}
