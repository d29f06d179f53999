//! Durable storage: append-only partition logs made of segment files.
//!
//! - [`log`]: [`PartitionLog`], one partition's segments: append a batch with one
//!   `write(2)`, `fdatasync` on demand, read from an offset, recover a torn tail, apply
//!   retention.
//! - [`segment`]: one segment file and its sparse offset index.
//!
//! The record format itself lives in `switchyard_codecs::record`.

pub mod log;
pub mod segment;

pub use log::{LogConfig, PartitionLog, Recovery, RollSync};
pub use segment::StorageError;
