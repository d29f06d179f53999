//! Topics and partitions.
//!
//! - [`partition`]: [`Partition`], the single writer of one partition log, with group
//!   commit: appends that arrive while one `fdatasync` runs share the next.

pub mod partition;

pub use partition::{Appended, FsyncPolicy, Partition, PartitionStatus};
