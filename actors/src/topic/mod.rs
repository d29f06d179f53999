//! Topics and partitions.
//!
//! - [`partition`]: [`Partition`], the single writer of one partition log, with group
//!   commit: appends that arrive while one `fdatasync` runs share the next.
//! - [`partition_msgs`]: what a partition is asked and answers, its fsync policy and
//!   status.
//! - [`dedup`]: idempotent publish, the `msg_id` index.
//! - [`registry`]: [`TopicRegistry`], the topics, auto-creation and routing.
//! - [`subscribers`]: a partition's subscribers and their credit.
//! - [`wire`]: the `topic` channel's envelopes, in and out.
//! - [`deliver_batch`]: deliveries of many records per envelope, and reading them back.
//! - [`error`]: [`TopicError`], why a topic request failed.

pub mod dedup;
pub mod deliver_batch;
pub mod error;
pub mod partition;
pub mod partition_msgs;
pub mod registry;
pub mod subscribers;
pub mod wire;

pub use error::TopicError;
pub use partition::{Appended, FsyncPolicy, Partition, PartitionStatus};
pub use registry::{Routing, TopicRegistry, TopicSettings, TopicSpec};
