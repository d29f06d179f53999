//! [`Partition`]: owns one partition log and is its only writer.
//!
//! Appends go to the page cache at once, with one `write(2)` per batch. With
//! `fsync = "always"` an append is answered only after an `fdatasync` that covers it;
//! the sync runs on the blocking pool, and appends that arrive meanwhile wait for the
//! next one together (group commit), so the sync rate, not the append rate, bounds it.

use std::ops::Range;
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use switchyard_codecs::record::Record;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::subscribers::{Credit, Subscribe, Subscribers, Unsubscribe};
use crate::storage::log::Append;
use crate::storage::{PartitionLog, RollSync, StorageError};
use crate::tree::TreeEntry;

/// When appends become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsyncPolicy {
    /// Answer an append after an `fdatasync` that covers it.
    Always,
    /// Answer at once; `fdatasync` on this period.
    Interval(Duration),
    /// Answer at once; leave flushing to the kernel.
    Never,
}

impl FsyncPolicy {
    /// Its name in the config and the protocol: `always`, `interval` or `never`.
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Interval(_) => "interval",
            FsyncPolicy::Never => "never",
        }
    }

    /// The period of `interval`, in milliseconds.
    pub fn interval_ms(self) -> Option<u64> {
        match self {
            FsyncPolicy::Interval(d) => Some(d.as_millis() as u64),
            _ => None,
        }
    }
}

/// The offsets a batch got, once it is as durable as the policy asks.
pub type Appended = Result<Range<u64>, String>;

/// Appends a batch.
#[derive(Debug, Message)]
#[rtype(result = "Appended")]
pub struct AppendBatch(pub Vec<Append>);

/// Reads from an offset, up to about `max_bytes` (at least one record if any).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Record>, String>")]
pub struct Fetch {
    pub from: u64,
    pub max_bytes: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PartitionStatus {
    pub start_offset: u64,
    pub next_offset: u64,
    /// Offsets below this are on disk (`fdatasync` done).
    pub durable_offset: u64,
    pub size_bytes: u64,
    pub segments: usize,
    pub fsyncs: u64,
}

#[derive(Debug, Message)]
#[rtype(result = "PartitionStatus")]
pub struct GetPartitionStatus;

/// Deletes closed segments past the retention limits.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ApplyRetention {
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
}

type Waiter = (Range<u64>, oneshot::Sender<Appended>);

#[derive(Debug)]
pub struct Partition {
    name: String,
    log: PartitionLog,
    policy: FsyncPolicy,
    /// Appended, waiting for the next sync to start.
    waiting: Vec<Waiter>,
    syncing: bool,
    durable: u64,
    fsyncs: u64,
    entry: Option<TreeEntry>,
    subs: Subscribers,
    pump_scheduled: bool,
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
        let durable = log.next_offset();
        log.set_roll_sync(match policy {
            FsyncPolicy::Always => RollSync::Inline,
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => RollSync::Background,
        });
        Partition {
            subs: Subscribers::new(topic.to_string(), index),
            pump_scheduled: false,
            pending: Vec::new(),
            write_scheduled: false,
            name: format!("{topic}/{index}"),
            log,
            policy,
            waiting: Vec::new(),
            syncing: false,
            durable,
            fsyncs: 0,
            entry: None,
        }
    }

    /// Shows the partition in the actor tree.
    pub fn with_entry(mut self, entry: TreeEntry) -> Self {
        self.entry = Some(entry);
        self
    }

    fn status(&self) -> PartitionStatus {
        PartitionStatus {
            start_offset: self.log.start_offset(),
            next_offset: self.log.next_offset(),
            durable_offset: self.durable,
            size_bytes: self.log.size_bytes(),
            segments: self.log.segment_count(),
            fsyncs: self.fsyncs,
        }
    }

    /// Subscribers see what is durable under `fsync = "always"`, everything otherwise.
    fn visible(&self) -> u64 {
        if self.policy == FsyncPolicy::Always {
            self.durable
        } else {
            self.log.next_offset()
        }
    }

    /// Sends subscribers what they have credit for; retries soon if a mailbox was full.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.subs.is_empty() {
            return;
        }
        if self.subs.pump(&self.log, self.visible()) && !self.pump_scheduled {
            self.pump_scheduled = true;
            ctx.run_later(Duration::from_millis(5), |act, ctx| {
                act.pump_scheduled = false;
                act.pump(ctx);
            });
        }
    }

    /// Starts an `fdatasync` covering everything appended so far, unless one runs;
    /// then the waiters that arrived meanwhile go with the next one.
    fn start_sync(&mut self, ctx: &mut Context<Self>) {
        if self.syncing || (self.waiting.is_empty() && self.durable == self.log.next_offset()) {
            return;
        }
        let file = match self.log.sync_handle() {
            Ok(f) => f,
            Err(e) => return self.fail_waiters(&storage_error(&self.name, e)),
        };
        self.syncing = true;
        let covered = std::mem::take(&mut self.waiting);
        let upto = self.log.next_offset();
        let fut = actix::fut::wrap_future::<_, Self>(actix_rt::task::spawn_blocking(move || {
            file.sync_data()
        }));
        ctx.spawn(fut.map(move |r, act, ctx| {
            act.syncing = false;
            act.fsyncs += 1;
            match r {
                Ok(Ok(())) => {
                    act.durable = act.durable.max(upto);
                    for (range, tx) in covered {
                        let _ = tx.send(Ok(range));
                    }
                }
                Ok(Err(e)) => {
                    warn!(partition = %act.name, error = %e, "fdatasync failed; appends not acknowledged");
                    for (_, tx) in covered {
                        let _ = tx.send(Err(format!("fdatasync failed: {e}")));
                    }
                }
                Err(e) => {
                    for (_, tx) in covered {
                        let _ = tx.send(Err(format!("fdatasync did not run: {e}")));
                    }
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
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            if let Some(e) = &act.entry {
                e.set_detail(format!(
                    "next {}, {} subscribers",
                    act.log.next_offset(),
                    act.subs.len()
                ));
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
        // Moved, not cloned.
        let all: Vec<Append> = batches.into_iter().flatten().collect();
        let range = match self.log.append(&all) {
            Ok(r) => r,
            Err(e) => {
                let e = storage_error(&self.name, e);
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
        let start = self.subs.add(s, &self.log)?;
        self.pump(ctx);
        Ok(start)
    }
}

impl Handler<Credit> for Partition {
    type Result = ();

    fn handle(&mut self, c: Credit, ctx: &mut Self::Context) {
        self.subs.credit(&c.key, c.n);
        self.pump(ctx);
    }
}

impl Handler<Unsubscribe> for Partition {
    type Result = ();

    fn handle(&mut self, u: Unsubscribe, _: &mut Self::Context) {
        self.subs.remove(&u.key);
    }
}

impl Handler<Fetch> for Partition {
    type Result = Result<Vec<Record>, String>;

    fn handle(&mut self, f: Fetch, _: &mut Self::Context) -> Self::Result {
        self.log
            .read(f.from, f.max_bytes)
            .map_err(|e| storage_error(&self.name, e))
    }
}

impl Handler<ApplyRetention> for Partition {
    type Result = ();

    fn handle(&mut self, r: ApplyRetention, _: &mut Self::Context) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let expired = self.log.expire(now_ms, r.retention_ms, r.retention_bytes);
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

/// Logs a storage error in full; a client is told the partition and the fault, never
/// the server path.
fn storage_error(name: &str, e: StorageError) -> String {
    warn!(partition = %name, error = %e, "storage error");
    let fault = match e {
        StorageError::Io { source, .. } => source.to_string(),
        StorageError::Corrupt {
            position, reason, ..
        } => format!("record at byte {position}: {reason}"),
    };
    format!("partition {name}: {fault}")
}
