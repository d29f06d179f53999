//! A driver's process: spawned with stdin/stdout pipes, stderr and fd 3 captured and
//! logged line by line under the driver's name, within bounds ([`super::logpump`]);
//! its descendants ended with it ([`super::reaper`]); reaped by a task that reports the exit;
//! ended by closing stdin, then SIGTERM, then SIGKILL.

use std::os::fd::OwnedFd;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use command_fds::{CommandFdExt, FdMapping};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdout, Command};
use tokio::sync::mpsc;
use tracing::warn;

use super::spec::{DriverLogLimits, DriverSpec};
use super::{logpump, reaper};

/// A running process's handles.
#[derive(Debug)]
pub struct Proc {
    pub pid: u32,
    /// Frames for stdin; dropping it closes stdin once the queue is written.
    pub stdin: Option<mpsc::Sender<Bytes>>,
    /// Bytes sent to `stdin` and not yet written to the pipe.
    pub queued: Arc<AtomicUsize>,
    pub exited: Arc<AtomicBool>,
}

/// What `spawn` hands back: the process, its stdout, and the future of its exit.
pub struct Spawned {
    pub proc: Proc,
    pub stdout: ChildStdout,
    pub exit: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<ExitStatus>>>>,
}

impl std::fmt::Debug for Spawned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawned").field("proc", &self.proc).finish()
    }
}

/// Starts `[command, service, args…]` with piped stdio and a log pipe on fd 3. Its
/// log lines go through `log` (see [`super::logpump`]); `dropped` counts those over it.
pub fn spawn(
    spec: &DriverSpec,
    queue: usize,
    log: DriverLogLimits,
    dropped: Arc<AtomicU64>,
    grace: Duration,
) -> std::io::Result<Spawned> {
    let (log_r, log_w) = std::io::pipe()?;
    let mut cmd = Command::new(&spec.command);
    cmd.arg(&spec.service)
        .args(&spec.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        // Its own process group: a Ctrl-C at the terminal reaches the broker, which
        // stops its drivers in order, instead of killing them all at once.
        .process_group(0);
    cmd.fd_mappings(vec![FdMapping {
        parent_fd: OwnedFd::from(log_w),
        child_fd: 3,
    }])
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mark = reaper::new_mark();
    cmd.env(reaper::MARK_VAR, &mark);
    let mut child = cmd.spawn()?;
    // The Command holds our copy of fd 3's write end; dropping it lets the reader see EOF.
    drop(cmd);
    let pid = child.id().unwrap_or(0);
    reaper::manage(pid);
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(std::io::Error::other("child has no pipes"));
    };
    let fd3 = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(log_r))?;
    actix::spawn(logpump::pump(stderr, fd3, spec.name.clone(), log, dropped));
    let (tx, mut rx) = mpsc::channel::<Bytes>(queue.max(1));
    let queued = Arc::new(AtomicUsize::new(0));
    let written = queued.clone();
    actix::spawn(async move {
        let mut stdin = stdin;
        let mut buf = BytesMut::new();
        while let Some(first) = rx.recv().await {
            buf.extend_from_slice(&first);
            // One write for everything queued meanwhile.
            while let Ok(more) = rx.try_recv() {
                buf.extend_from_slice(&more);
            }
            if stdin.write_all(&buf).await.is_err() {
                break;
            }
            written.fetch_sub(buf.len(), Ordering::SeqCst);
            buf.clear();
        }
        let _ = stdin.shutdown().await;
    });
    let exited = Arc::new(AtomicBool::new(false));
    let done = exited.clone();
    let name = spec.name.clone();
    let orphans = Arc::new(reaper::Orphans::default());
    actix::spawn(reaper::tend(mark.clone(), exited.clone(), orphans.clone()));
    let exit = Box::pin(async move {
        let status = child.wait().await;
        done.store(true, Ordering::SeqCst);
        reaper::unmanage(pid);
        // Whatever the driver started and left behind goes too, in its process group or
        // not (`setsid`): no orphan outlives its driver. The exit counts once they are
        // gone, so a restarted driver never meets its predecessor's children.
        reaper::end_all(&name, &mark, grace, &orphans).await;
        status
    });
    Ok(Spawned {
        proc: Proc {
            pid,
            stdin: Some(tx),
            queued,
            exited,
        },
        stdout,
        exit,
    })
}

impl Proc {
    /// Closes stdin, then after `grace` sends SIGTERM and after another `grace` SIGKILL,
    /// unless the process has exited by then. The escalation owns the process from here.
    pub fn terminate(mut self, driver: &str, grace: Duration) {
        self.stdin = None;
        if self.pid == 0 {
            return;
        }
        let name = driver.to_string();
        actix::spawn(async move {
            for sig in [Signal::SIGTERM, Signal::SIGKILL] {
                tokio::time::sleep(grace).await;
                if self.has_exited() {
                    return;
                }
                warn!(driver = %name, pid = self.pid, signal = %sig, "driver still running, signalling");
                self.signal(sig);
            }
        });
    }

    /// Signals the driver's process group (it leads its own), or the process alone.
    /// The pid is ours until we reap it, so it cannot have been reused.
    fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(self.pid as i32);
        if killpg(pid, sig).is_err() {
            let _ = kill(pid, sig);
        }
    }

    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }
}

impl Drop for Proc {
    /// A process nobody waits for any more (its actor, or the runtime, went away) is
    /// killed at once: no orphan outlives the broker's hold on it.
    fn drop(&mut self) {
        if self.pid != 0 && !self.has_exited() {
            self.signal(Signal::SIGKILL);
        }
    }
}
