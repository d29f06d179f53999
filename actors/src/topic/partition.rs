//! [`Partition`]: owns one partition log and is its only writer.
//!
//! Appends go to the page cache at once, with one `write(2)` per batch. With
//! `fsync = "always"` an append is answered only after an `fdatasync` that covers it;
//! the sync runs on the blocking pool, and appends that arrive meanwhile wait for the
//! next one together (group commit), so the sync rate, not the append rate, bounds it.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

pub use super::partition_msgs::{
    AppendBatch, Appended, ApplyRetention, Fetch, FsyncPolicy, GetPartitionStatus, PartitionStatus,
    Retire,
};

mod reads;
use super::subscribers::{Credit, Subscribe, Subscribers, Unsubscribe};
use crate::storage::log::Append;
use crate::storage::{LogConfig, PartitionLog, RollSync, StorageError};
use crate::tree::TreeEntry;

type Waiter = (Range<u64>, oneshot::Sender<Appended>);

#[derive(Debug)]
pub struct Partition {
    name: String,
    /// `None` while the log cannot be opened (see `failed`).
    log: Option<PartitionLog>,
    /// Why the log could not be opened, and how to try again.
    failed: Option<(String, PathBuf, LogConfig)>,
    unreadable_reads: u64,
    policy: FsyncPolicy,
    /// Appended, waiting for the next sync to start.
    waiting: Vec<Waiter>,
    syncing: bool,
    durable: u64,
    fsyncs: u64,
    entry: Option<TreeEntry>,
    subs: Subscribers,
    pump_scheduled: bool,
    /// A pump runs once the mailbox is drained (see [`PumpDue`]).
    pump_due: bool,
    /// Batches received this turn, written together once the mailbox is drained.
    pending: Vec<(Vec<Append>, oneshot::Sender<Appended>)>,
    write_scheduled: bool,
}

/// Writes what this turn's appends brought, with one `write(2)`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct WritePending;

impl Partition {
    /// The partition `index` of `topic`.
    pub fn new(topic: &str, index: u32, mut log: PartitionLog, policy: FsyncPolicy) -> Self {
        log.set_roll_sync(roll_sync(policy));
        Partition::with_log(topic, index, Ok(log), policy)
    }

    /// A partition whose log could not be opened: it answers every request with the
    /// reason, shows it in the tree and the listings, and tries to open it again every
    /// second (a shortage of file descriptors passes).
    pub fn failed(
        topic: &str,
        index: u32,
        dir: PathBuf,
        cfg: LogConfig,
        policy: FsyncPolicy,
        reason: String,
    ) -> Self {
        Partition::with_log(topic, index, Err((reason, dir, cfg)), policy)
    }

    fn with_log(
        topic: &str,
        index: u32,
        log: Result<PartitionLog, (String, PathBuf, LogConfig)>,
        policy: FsyncPolicy,
    ) -> Self {
        let (log, failed) = match log {
            Ok(l) => (Some(l), None),
            Err(f) => (None, Some(f)),
        };
        Partition {
            durable: log.as_ref().map_or(0, PartitionLog::next_offset),
            log,
            failed,
            unreadable_reads: 0,
            subs: Subscribers::new(topic.to_string(), index),
            pump_scheduled: false,
            pump_due: false,
            pending: Vec::new(),
            write_scheduled: false,
            name: format!("{topic}/{index}"),
            policy,
            waiting: Vec::new(),
            syncing: false,
            fsyncs: 0,
            entry: None,
        }
    }

    /// The log, or why there is none.
    fn log(&self) -> Result<&PartitionLog, String> {
        self.log.as_ref().ok_or_else(|| self.unavailable())
    }

    fn unavailable(&self) -> String {
        let why = self.failed.as_ref().map_or("not open", |f| f.0.as_str());
        format!("partition {} is failed: {why}", self.name)
    }

    /// Tries to clear a storage fault (or open a failed log) again.
    fn mend(&mut self, ctx: &mut Context<Self>) {
        if let Some((_, dir, cfg)) = &self.failed {
            match PartitionLog::open(dir, *cfg) {
                Ok((mut log, _)) => {
                    info!(partition = %self.name, "partition log opened after a failure");
                    log.set_roll_sync(roll_sync(self.policy));
                    self.durable = log.next_offset();
                    self.log = Some(log);
                    self.failed = None;
                }
                Err(e) => {
                    debug!(partition = %self.name, error = %e, "partition log still cannot be opened");
                    return;
                }
            }
        }
        let keep = self.policy != FsyncPolicy::Always;
        let Some(log) = self.log.as_mut() else {
            return;
        };
        if log.fault().is_none() {
            // A background sync of a closed segment may have failed meanwhile.
            if let Err(e) = log.mend(keep) {
                debug!(partition = %self.name, error = %e, "log not mended yet");
            }
            return;
        }
        if self.syncing {
            return;
        }
        match log.mend(keep) {
            Ok(()) => {
                self.durable = log.synced().next_offset.min(log.next_offset());
                self.pump(ctx);
            }
            Err(e) => debug!(partition = %self.name, error = %e, "log not mended yet"),
        }
    }

    /// Shows the partition in the actor tree.
    pub fn with_entry(mut self, entry: TreeEntry) -> Self {
        entry.set_detail(self.detail());
        self.entry = Some(entry);
        self
    }

    /// Its line in the actor tree: offsets, or what is wrong.
    fn detail(&self) -> String {
        match &self.log {
            None => self.unavailable(),
            Some(log) => {
                let damaged = log.damage().iter().filter(|d| d.next > d.first).count();
                let mut s = match log.fault() {
                    None => format!(
                        "next {}, {} subscribers",
                        log.next_offset(),
                        self.subs.len()
                    ),
                    Some(f) => format!("unwritable: {f}; next {}", log.next_offset()),
                };
                if damaged > 0 {
                    s.push_str(&format!(", {damaged} damaged ranges"));
                }
                s
            }
        }
    }

    fn status(&self) -> PartitionStatus {
        let Some(log) = &self.log else {
            return PartitionStatus {
                state: "failed",
                error: Some(self.unavailable()),
                ..PartitionStatus::default()
            };
        };
        let fault = log.fault();
        PartitionStatus {
            start_offset: log.start_offset(),
            next_offset: log.next_offset(),
            durable_offset: self.durable,
            size_bytes: log.size_bytes(),
            segments: log.segment_count(),
            fsyncs: self.fsyncs,
            state: if fault.is_some() { "unwritable" } else { "ok" },
            error: fault,
            damaged: log
                .damage()
                .iter()
                .filter(|d| d.next > d.first)
                .map(|d| [d.first, d.next - 1])
                .collect(),
            unreadable_reads: self.unreadable_reads + self.subs.unreadable(),
        }
    }

    /// Subscribers see what is durable under `fsync = "always"`, everything otherwise.
    fn visible(&self) -> u64 {
        match (&self.log, self.policy) {
            (None, _) => 0,
            (Some(_), FsyncPolicy::Always) => self.durable,
            (Some(log), _) => log.next_offset(),
        }
    }

    /// Sends subscribers what they have credit for; retries soon if a mailbox was full.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.subs.is_empty() {
            return;
        }
        let visible = self.visible();
        let Some(log) = &self.log else {
            return;
        };
        if self.subs.pump(log, visible) && !self.pump_scheduled {
            self.pump_scheduled = true;
            ctx.run_later(Duration::from_millis(5), |act, ctx| {
                act.pump_scheduled = false;
                act.pump(ctx);
            });
        }
    }

    /// Pumps once this turn's messages are handled: a burst of subscriptions or
    /// credits (200 subscribers waking at once) costs one turn of reads, not one each.
    fn pump_soon(&mut self, ctx: &mut Context<Self>) {
        if !self.pump_due {
            self.pump_due = true;
            ctx.notify(PumpDue);
        }
    }

    /// Starts an `fdatasync` covering everything appended so far, unless one runs;
    /// then the waiters that arrived meanwhile go with the next one.
    fn start_sync(&mut self, ctx: &mut Context<Self>) {
        let Some(log) = self.log.as_mut() else {
            return self.fail_waiters("partition log is not open");
        };
        if self.syncing || (self.waiting.is_empty() && self.durable == log.next_offset()) {
            return;
        }
        if log.fault().is_some() {
            return self.fail_waiters("partition log is recovering from a storage fault");
        }
        let handle = match log.sync_handle() {
            Ok(h) => h,
            Err(e) => return self.fail_waiters(&storage_error(&self.name, e)),
        };
        self.syncing = true;
        let covered = std::mem::take(&mut self.waiting);
        let upto = handle.point.next_offset;
        let point = handle.point;
        let fut = actix::fut::wrap_future::<_, Self>(actix_rt::task::spawn_blocking(move || {
            handle.sync()
        }));
        ctx.spawn(fut.map(move |r, act, ctx| {
            act.syncing = false;
            act.fsyncs += 1;
            let r = match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("fdatasync failed: {e}")),
                Err(e) => Err(format!("fdatasync did not run: {e}")),
            };
            if let Some(log) = act.log.as_mut() {
                log.sync_done(point, r.clone());
            }
            match r {
                Ok(()) => {
                    act.durable = act.durable.max(upto);
                    for (range, tx) in covered {
                        let _ = tx.send(Ok(range));
                    }
                }
                Err(e) => {
                    // Never retried as if it had worked: no ack until the log is mended.
                    error!(partition = %act.name, error = %e, "appends not acknowledged; partition takes no appends until its log is re-verified");
                    for (_, tx) in covered {
                        let _ = tx.send(Err(e.clone()));
                    }
                    act.fail_waiters(&e);
                    act.mend(ctx);
                }
            }
            act.pump(ctx);
            act.start_sync(ctx);
        }));
    }

    fn fail_waiters(&mut self, why: &str) {
        for (_, tx) in self.waiting.drain(..) {
            let _ = tx.send(Err(why.to_string()));
        }
    }
}

impl Actor for Partition {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        // The tree shows the offsets as of the last second, not a format per append.
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            act.mend(ctx);
            if let Some(e) = &act.entry {
                e.set_detail(act.detail());
            }
        });
        if let FsyncPolicy::Interval(every) = self.policy {
            ctx.run_interval(every, |act, ctx| act.start_sync(ctx));
        }
    }
}

impl Handler<AppendBatch> for Partition {
    type Result = ResponseFuture<Appended>;

    /// Queues the batch; every batch of this mailbox turn goes to the log together
    /// (one `write(2)`), and each is answered with its own offsets.
    fn handle(&mut self, AppendBatch(batch): AppendBatch, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.pending.push((batch, tx));
        if !self.write_scheduled {
            self.write_scheduled = true;
            ctx.notify(WritePending);
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("partition stopped before the append was durable".into()))
        })
    }
}

impl Handler<WritePending> for Partition {
    type Result = ();

    fn handle(&mut self, _: WritePending, ctx: &mut Self::Context) {
        self.write_scheduled = false;
        let (batches, senders): (Vec<Vec<Append>>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().unzip();
        let counts: Vec<u64> = batches.iter().map(|b| b.len() as u64).collect();
        // Moved, not cloned, into one allocation of the right size (a flattening
        // collect grows it again and again: this runs once per write batch).
        let all: Vec<Append> = if batches.len() == 1 {
            batches.into_iter().flatten().collect()
        } else {
            let mut all = Vec::with_capacity(counts.iter().sum::<u64>() as usize);
            for b in batches {
                all.extend(b);
            }
            all
        };
        let appended = match self.log.as_mut() {
            Some(log) => log.append(&all).map_err(|e| storage_error(&self.name, e)),
            None => Err(self.unavailable()),
        };
        let range = match appended {
            Ok(r) => r,
            Err(e) => {
                for tx in senders {
                    let _ = tx.send(Err(e.clone()));
                }
                return;
            }
        };
        debug!(partition = %self.name, first = range.start, count = range.end - range.start, batches = counts.len(), "appended");
        let mut next = range.start;
        for (count, tx) in counts.into_iter().zip(senders) {
            let r = next..next + count;
            next = r.end;
            if self.policy == FsyncPolicy::Always {
                self.waiting.push((r, tx));
            } else {
                let _ = tx.send(Ok(r));
            }
        }
        if self.policy == FsyncPolicy::Always {
            self.start_sync(ctx);
        } else {
            self.pump(ctx);
        }
    }
}

impl Handler<Subscribe> for Partition {
    type Result = Result<u64, String>;

    fn handle(&mut self, s: Subscribe, ctx: &mut Self::Context) -> Self::Result {
        let Some(log) = &self.log else {
            return Err(self.unavailable());
        };
        let start = self.subs.add(s, log)?;
        self.pump_soon(ctx);
        Ok(start)
    }
}

/// Runs the pump [`Partition::pump_soon`] asked for.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct PumpDue;

impl Handler<PumpDue> for Partition {
    type Result = ();

    fn handle(&mut self, _: PumpDue, ctx: &mut Self::Context) {
        self.pump_due = false;
        self.pump(ctx);
    }
}

impl Handler<Credit> for Partition {
    type Result = ();

    fn handle(&mut self, c: Credit, ctx: &mut Self::Context) {
        self.subs.credit(&c.key, c.n);
        self.pump_soon(ctx);
    }
}

impl Handler<Unsubscribe> for Partition {
    type Result = ();

    fn handle(&mut self, u: Unsubscribe, _: &mut Self::Context) {
        self.subs.remove(&u.key);
    }
}

impl Handler<ApplyRetention> for Partition {
    type Result = ();

    fn handle(&mut self, r: ApplyRetention, _: &mut Self::Context) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let Some(log) = self.log.as_mut() else {
            return;
        };
        let expired = log.expire(now_ms, r.retention_ms, r.retention_bytes);
        if expired.is_empty() {
            return;
        }
        // Unlinking a large segment can take milliseconds: not on the append path.
        let name = self.name.clone();
        actix_rt::task::spawn_blocking(move || {
            for e in expired {
                if let Err(e) = e.remove() {
                    storage_error(&name, e);
                }
            }
        });
    }
}

impl Handler<GetPartitionStatus> for Partition {
    type Result = MessageResult<GetPartitionStatus>;

    fn handle(&mut self, _: GetPartitionStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}

/// Logs a storage error with its paths, and returns what a client is told: the
/// partition and the fault, never a server path.
fn storage_error(name: &str, e: StorageError) -> String {
    match &e {
        StorageError::Damaged { .. } => {
            error!(partition = %name, error = %e, "read reached unreadable records")
        }
        _ => warn!(partition = %name, error = %e, "storage error"),
    }
    format!("partition {name}: {}", e.client_text())
}

fn roll_sync(policy: FsyncPolicy) -> RollSync {
    match policy {
        FsyncPolicy::Always => RollSync::Inline,
        FsyncPolicy::Interval(_) | FsyncPolicy::Never => RollSync::Background,
    }
}
