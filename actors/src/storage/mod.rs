//! Durable storage: append-only partition logs made of segment files.
//!
//! - [`log`]: [`PartitionLog`], one partition's segments: append a batch (undone
//!   whole when a write fails), `fdatasync` on demand, mend after a fault.
//! - [`durability`]: syncs, and mending after a failed write or `fdatasync`.
//! - `read`: reads in offset order; unreadable offsets are reported as a range.
//! - `recover`: opening a log: torn tails cut, damage and gaps found and kept.
//! - `resync`: after a failed `fdatasync`, re-read, verify, rewrite, sync.
//! - [`retention`]: the oldest segments leave by age or size.
//! - [`scan`]: a segment read whole in bounded memory, with its damage.
//! - [`segment`]: one segment file and its sparse offset index.
//! - [`files`]: the LRU of open closed-segment files.
//! - [`faults`]: the log's file operations, with faults tests can plant.
//! - [`verify`]: the offline check (and repair) of a data dir.
//! - [`lock`]: the `flock` a running broker holds on its data dir.
//!
//! The record format itself lives in `switchyard_codecs::record`.

pub mod durability;
pub mod faults;
pub mod files;
pub mod lock;
pub mod log;
mod read;
mod recover;
mod resync;
pub mod retention;
pub mod scan;
pub mod segment;
pub mod verify;

pub use durability::{SyncHandle, SyncPoint};
pub use faults::{Fault, Faults, Op};
pub use lock::{DirLock, LockError};
pub use log::{LogConfig, PartitionLog, Recovery, RollSync};
pub use retention::Expired;
pub use scan::Damage;
pub use segment::StorageError;
