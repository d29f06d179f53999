//! [`TopicError`]: why a topic request failed, typed, so each front end picks its own
//! answer (an `error` envelope on the broker port, a status code over HTTP and gRPC)
//! from the variant rather than from the text.

/// A failed topic request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("unknown topic `{topic}` (auto-create is off)")]
    AutoCreateOff { topic: String },
    #[error("unknown topic `{topic}`")]
    UnknownTopic { topic: String },
    #[error("topic `{topic}` has no partition {partition} (it has {partitions})")]
    NoPartition {
        topic: String,
        partition: u32,
        partitions: usize,
    },
    #[error("topic `{topic}` routes explicitly: a partition is required")]
    PartitionRequired { topic: String },
    #[error("invalid topic name `{name}`: 1 to 128 of A-Z a-z 0-9 . _ -, not starting with `.`")]
    InvalidName { name: String },
    #[error("a topic has 1 to 4096 partitions, not {count}")]
    PartitionCount { count: u32 },
    /// A create naming an option the existing topic has otherwise.
    #[error("topic `{topic}` exists with {what} {has}, not {asked}")]
    Conflict {
        topic: String,
        what: &'static str,
        has: String,
        asked: String,
    },
    /// The partition or its log failed; the text is the partition's.
    #[error("{0}")]
    Partition(String),
    /// The actor that would answer has stopped or its mailbox is full.
    #[error("{0}")]
    Unavailable(String),
}

impl From<actix::MailboxError> for TopicError {
    fn from(e: actix::MailboxError) -> Self {
        TopicError::Unavailable(e.to_string())
    }
}
