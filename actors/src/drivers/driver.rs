//! [`Driver`]: one per `[[driver]]` table, for the broker's whole life. It owns the
//! driver's process (one incarnation at a time), speaks the lifecycle (options, start,
//! the alive deadline, stop), restarts a crashed driver at once and a failed start with
//! back-off, within the restart policy, and hands every other frame to the host.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use serde_json::Value;
use switchyard_codecs::{Envelope, Frame, FrameCodec, FrameError, Mode};
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;
use tracing::{debug, error, info, warn};

use super::process::{self, Proc};
use super::spec::{DriverSpec, HostSettings};
use super::status::{DriverState, DriverStatus, FrameCounts};
use super::{DriverUpdate, FromDriver};
use crate::tree::TreeEntry;

/// A frame for the driver's stdin.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), SendError>")]
pub struct ToDriver(pub Envelope);

/// Why a frame could not be queued for a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("driver input queue full")]
    Busy,
    #[error("driver input queue full: {queued} bytes waiting, queue_bytes is {max}")]
    BusyBytes { queued: usize, max: usize },
    #[error("driver process not running")]
    NotRunning,
}

/// New configuration: a changed command, service or args restarts the process (cold);
/// changed options or dynamic data are sent again to the running one (hot).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub spec: DriverSpec,
    pub dynamic: Value,
}

/// Stop the driver; answered once its process has exited.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopDriver;

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Exited {
    gen: u64,
    status: String,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Out(u64, Result<Frame, FrameError>);

#[derive(Debug)]
pub struct Driver {
    spec: DriverSpec,
    dynamic: Value,
    settings: Arc<HostSettings>,
    host: Recipient<DriverUpdate>,
    frames: Recipient<FromDriver>,
    state: DriverState,
    /// The incarnation whose exit and frames count; older ones are retired.
    gen: u64,
    live: Option<u64>,
    proc: Option<Proc>,
    /// Restarts within the policy window.
    window: VecDeque<Instant>,
    /// Failed starts in a row, for the back-off.
    attempts: u32,
    status: DriverStatus,
    stop_waiters: Vec<oneshot::Sender<()>>,
    entry: TreeEntry,
    /// Its log lines dropped over the rate, every process counted (the host reads it).
    log_dropped: Arc<AtomicU64>,
    /// Its frames in and out, every process counted (the host reads them).
    counts: Arc<FrameCounts>,
}

impl Driver {
    pub fn new(
        spec: DriverSpec,
        settings: Arc<HostSettings>,
        host: Recipient<DriverUpdate>,
        frames: Recipient<FromDriver>,
        entry: TreeEntry,
        log_dropped: Arc<AtomicU64>,
        counts: Arc<FrameCounts>,
    ) -> Self {
        let dynamic = settings.dynamic_data(&spec.name);
        let status = DriverStatus::new(&spec);
        Driver {
            spec,
            dynamic,
            settings,
            host,
            frames,
            state: DriverState::Starting,
            gen: 0,
            live: None,
            proc: None,
            window: VecDeque::new(),
            attempts: 0,
            status,
            stop_waiters: Vec::new(),
            entry,
            log_dropped,
            counts,
        }
    }

    fn set_state(&mut self, state: DriverState) {
        self.state = state;
        self.status.state = state;
        self.status.pid = self.proc.as_ref().map(|p| p.pid);
        self.entry.set_detail(format!(
            "{} pid {} restarts {}",
            state.as_str(),
            self.status.pid.unwrap_or(0),
            self.status.restarts
        ));
        let _ = self.host.try_send(DriverUpdate(self.status.clone()));
    }

    fn write(&mut self, env: &Envelope) -> Result<(), SendError> {
        let (tx, queued) = self
            .proc
            .as_ref()
            .and_then(|p| Some((p.stdin.as_ref()?, &p.queued)))
            .ok_or(SendError::NotRunning)?;
        // Counted in bytes as well as frames: a driver that stops reading holds at most
        // `queue_bytes` of ours (one frame more when the queue is empty).
        let len = env.encoded_len();
        let max = self.spec.queue_bytes;
        let now = queued.load(Ordering::SeqCst);
        if now > 0 && now + len > max {
            return Err(SendError::BusyBytes { queued: now, max });
        }
        let mut buf = BytesMut::with_capacity(len);
        env.encode(&mut buf).map_err(|_| SendError::NotRunning)?;
        let len = buf.len();
        // Counted before the writer can take it, so its subtraction never comes first.
        queued.fetch_add(len, Ordering::SeqCst);
        let sent = tx.try_send(buf.freeze());
        if sent.is_err() {
            queued.fetch_sub(len, Ordering::SeqCst);
        }
        match sent {
            Ok(()) => {
                self.counts.add_out();
                Ok(())
            }
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => Err(SendError::Busy),
            Err(_) => Err(SendError::NotRunning),
        }
    }

    fn send_options_and_start(&mut self, ctx: &mut Context<Self>) {
        let payload = serde_json::json!({ "data": self.spec.options, "dynamicData": self.dynamic });
        let options = Envelope::new("command", "options").with_payload(Bytes::from(
            serde_json::to_vec(&payload).unwrap_or_default(),
        ));
        // The deadline is armed before start is written (the daemon's race, closed).
        let gen = self.gen;
        ctx.run_later(self.spec.start_timeout, move |act, ctx| {
            act.deadline(gen, ctx)
        });
        let sent = self
            .write(&options)
            .and_then(|()| self.write(&Envelope::new("command", "start")));
        if let Err(e) = sent {
            debug!(driver = %self.spec.name, error = %e, "options not sent");
        }
    }

    fn spawn(&mut self, ctx: &mut Context<Self>) {
        self.gen += 1;
        let gen = self.gen;
        let (s, dropped) = (&self.settings, self.log_dropped.clone());
        match process::spawn(&self.spec, s.queue_frames, s.log, dropped, s.kill_grace) {
            Err(e) => {
                // The command's path goes to the log; the reason is in the driver's
                // status, which clients can read.
                warn!(driver = %self.spec.name, command = %self.spec.command.display(), error = %e, "driver command cannot be started");
                let why = format!("cannot start its command: {e}");
                self.start_failed(ctx, why);
            }
            Ok(s) => {
                self.status.starts += 1;
                info!(driver = %self.spec.name, pid = s.proc.pid, command = %self.spec.command.display(), service = %self.spec.service, "driver process started");
                self.live = Some(gen);
                self.proc = Some(s.proc);
                let codec = FrameCodec::new(Mode::Envelope, self.settings.limits);
                ctx.add_stream(FramedRead::new(s.stdout, codec).map(move |r| Out(gen, r)));
                let me = ctx.address().downgrade();
                let exit = s.exit;
                actix::spawn(async move {
                    let status = match exit.await {
                        Ok(st) => st.to_string(),
                        Err(e) => format!("wait failed: {e}"),
                    };
                    if let Some(a) = me.upgrade() {
                        a.do_send(Exited { gen, status });
                    }
                });
                self.set_state(DriverState::Starting);
                self.send_options_and_start(ctx);
            }
        }
    }

    /// Ends the current process (if any); its exit and frames no longer count.
    fn retire(&mut self) {
        self.live = None;
        if let Some(p) = self.proc.take() {
            p.terminate(&self.spec.name, self.settings.kill_grace);
        }
    }

    /// Counts a restart in the window; `false` once the policy is spent.
    fn allow_restart(&mut self) -> bool {
        let now = Instant::now();
        let within = self.settings.policy.within;
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) > within)
        {
            self.window.pop_front();
        }
        if self.window.len() >= self.settings.policy.max_restarts as usize {
            return false;
        }
        self.window.push_back(now);
        true
    }

    fn give_up(&mut self, why: String) {
        error!(
            driver = %self.spec.name, reason = %why, max_restarts = self.settings.policy.max_restarts,
            within_ms = self.settings.policy.within.as_millis() as u64, "driver given up"
        );
        self.status.last_error = Some(why);
        self.set_state(DriverState::Failed);
    }

    /// A running driver crashed or asked for a cold restart: a new process at once.
    fn restart(&mut self, ctx: &mut Context<Self>, why: String) {
        self.retire();
        if !self.allow_restart() {
            return self.give_up(why);
        }
        self.status.restarts += 1;
        warn!(driver = %self.spec.name, reason = %why, restarts = self.status.restarts, "restarting driver");
        self.status.last_error = Some(why);
        self.attempts = 0;
        self.spawn(ctx);
    }

    /// A start did not reach `alive`: retry with back-off within the policy.
    fn start_failed(&mut self, ctx: &mut Context<Self>, why: String) {
        self.retire();
        warn!(driver = %self.spec.name, reason = %why, "driver start failed");
        if self.spec.required && self.status.alive_count == 0 {
            // A required driver that never came up: the host aborts start-up.
            self.status.last_error = Some(why);
            return self.set_state(DriverState::Failed);
        }
        if !self.allow_restart() {
            return self.give_up(why);
        }
        self.attempts += 1;
        self.status.restarts += 1;
        self.status.last_error = Some(why);
        let delay = self.settings.policy.delay(self.attempts);
        info!(driver = %self.spec.name, delay_ms = delay.as_millis() as u64, attempt = self.attempts, "retrying driver start");
        self.set_state(DriverState::Backoff);
        let gen = self.gen;
        ctx.run_later(delay, move |act, ctx| {
            if act.gen == gen && act.state == DriverState::Backoff {
                act.spawn(ctx);
            }
        });
    }

    fn deadline(&mut self, gen: u64, ctx: &mut Context<Self>) {
        if self.live == Some(gen)
            && matches!(self.state, DriverState::Starting | DriverState::Reloading)
        {
            let ms = self.spec.start_timeout.as_millis();
            self.start_failed(ctx, format!("no `state alive` within {ms} ms"));
        }
    }

    fn on_state(&mut self, state: &str, ctx: &mut Context<Self>) {
        match state {
            "alive" if matches!(self.state, DriverState::Starting | DriverState::Reloading) => {
                info!(driver = %self.spec.name, pid = self.status.pid.unwrap_or(0), "driver alive");
                self.attempts = 0;
                self.status.alive_count += 1;
                self.set_state(DriverState::Alive);
            }
            "cold" if !matches!(self.state, DriverState::Stopping | DriverState::Stopped) => {
                self.restart(ctx, "driver asked for a cold restart".into());
            }
            "stopped" if self.state == DriverState::Stopping => {
                if let Some(p) = self.proc.take() {
                    p.terminate(&self.spec.name, self.settings.kill_grace);
                }
            }
            other => debug!(driver = %self.spec.name, state = %other, "driver state ignored"),
        }
    }

    fn finish_stop(&mut self, ctx: &mut Context<Self>) {
        self.proc = None;
        self.live = None;
        self.set_state(DriverState::Stopped);
        for w in self.stop_waiters.drain(..) {
            let _ = w.send(());
        }
        ctx.stop();
    }
}

impl Actor for Driver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.spawn(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(p) = self.proc.take() {
            p.terminate(&self.spec.name, self.settings.kill_grace);
        }
        info!(driver = %self.spec.name, "driver stopped");
    }
}

impl StreamHandler<Out> for Driver {
    fn handle(&mut self, Out(gen, frame): Out, ctx: &mut Self::Context) {
        if self.live != Some(gen) {
            return;
        }
        match frame {
            Ok(Frame::Envelope(env)) => {
                self.counts.add_in();
                if env.channel == "state" {
                    let s = env.subject.to_string();
                    self.on_state(&s, ctx);
                } else if let Err(e) = self.frames.try_send(FromDriver {
                    name: self.spec.name.clone(),
                    env,
                }) {
                    warn!(driver = %self.spec.name, error = %e, "host mailbox full, driver frame dropped");
                }
            }
            Ok(Frame::Maze(_)) => {}
            // Skipped whole by the codec: the stream is still in step, so the driver
            // keeps running; only the frame is lost.
            Ok(Frame::Oversize(o)) => {
                warn!(driver = %self.spec.name, offset = o.offset, size = o.size, max = o.max, channel = %o.channel, subject = %o.subject, "oversize frame from driver dropped");
            }
            Err(e) => {
                warn!(driver = %self.spec.name, offset = e.offset, reason = %e.kind, "malformed frame from driver");
                if self.state == DriverState::Stopping {
                    return;
                }
                self.restart(
                    ctx,
                    format!("malformed frame at byte {}: {}", e.offset, e.kind),
                );
            }
        }
    }

    /// Its stdout closing is not a crash: only the process's exit is.
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl Handler<Exited> for Driver {
    type Result = ();

    fn handle(&mut self, Exited { gen, status }: Exited, ctx: &mut Self::Context) {
        if self.live != Some(gen) {
            debug!(driver = %self.spec.name, status = %status, "retired driver process exited");
            return;
        }
        self.proc = None;
        self.live = None;
        match self.state {
            DriverState::Stopping => {
                info!(driver = %self.spec.name, status = %status, "driver process exited");
                self.finish_stop(ctx);
            }
            DriverState::Alive | DriverState::Reloading => {
                warn!(driver = %self.spec.name, status = %status, "driver process exited");
                self.restart(ctx, format!("process exited: {status}"));
            }
            DriverState::Starting => {
                self.start_failed(ctx, format!("process exited before alive: {status}"));
            }
            _ => {}
        }
    }
}

impl Handler<ToDriver> for Driver {
    type Result = Result<(), SendError>;

    fn handle(&mut self, ToDriver(env): ToDriver, _: &mut Self::Context) -> Self::Result {
        if self.state == DriverState::Stopping {
            return Err(SendError::NotRunning);
        }
        self.write(&env)
    }
}

impl Handler<Reconfigure> for Driver {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        let cold = !self.spec.same_process(&msg.spec);
        let hot = msg.spec.options != self.spec.options || msg.dynamic != self.dynamic;
        self.spec = msg.spec;
        self.dynamic = msg.dynamic;
        self.status.required = self.spec.required;
        if cold || matches!(self.state, DriverState::Failed | DriverState::Backoff) {
            info!(driver = %self.spec.name, "config changed: cold restart");
            self.window.clear();
            self.attempts = 0;
            self.retire();
            self.status.restarts += 1;
            self.spawn(ctx);
        } else if hot && self.state == DriverState::Alive {
            info!(driver = %self.spec.name, "options changed: hot reload");
            self.set_state(DriverState::Reloading);
            self.send_options_and_start(ctx);
        } else if hot {
            // Starting now: the new options go with the next start.
            debug!(driver = %self.spec.name, "options changed while starting");
        }
    }
}

impl Handler<StopDriver> for Driver {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopDriver, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.stop_waiters.push(tx);
        if self.proc.is_none() {
            self.finish_stop(ctx);
        } else if self.state != DriverState::Stopping {
            let was_alive = matches!(self.state, DriverState::Alive | DriverState::Reloading);
            self.set_state(DriverState::Stopping);
            if was_alive {
                let _ = self.write(&Envelope::new("command", "stop"));
            }
            let gen = self.gen;
            let wait = if was_alive {
                self.settings.stop_wait
            } else {
                Duration::ZERO
            };
            ctx.run_later(wait, move |act, _| {
                if act.live == Some(gen) {
                    if let Some(p) = act.proc.take() {
                        p.terminate(&act.spec.name, act.settings.kill_grace);
                    }
                }
            });
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
