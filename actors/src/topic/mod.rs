//! Topics and partitions.
//!
//! - [`partition`]: [`Partition`], the single writer of one partition log, with group
//!   commit: appends that arrive while one `fdatasync` runs share the next.
//! - [`registry`]: [`TopicRegistry`], the topics, auto-creation and routing.
//! - [`wire`]: the `topic` channel's envelopes, in and out.

pub mod partition;
pub mod registry;
pub mod wire;

pub use partition::{Appended, FsyncPolicy, Partition, PartitionStatus};
pub use registry::{Routing, TopicRegistry, TopicSettings, TopicSpec};
