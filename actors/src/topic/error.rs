//! [`TopicError`]: why a topic request failed, typed, so each front end picks its own
//! answer (an `error` envelope on the broker port, a status code over HTTP and gRPC)
//! from the variant rather than from the text.

use std::borrow::Cow;

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
    #[error("label msg_id: 1 to 256 bytes, not {len}")]
    InvalidMsgId { len: usize },
    #[error("a topic has 1 to 4096 partitions, not {count}")]
    PartitionCount { count: u32 },
    #[error(
        "topic `{topic}` asks for {count} partitions, over topics.max_partitions_per_topic ({max})"
    )]
    TooManyPartitions { topic: String, count: u32, max: u32 },
    /// All topics together would pass `topics.max_partitions`.
    #[error("topic `{topic}` needs {count} partitions and {open} of topics.max_partitions ({max}) are in use")]
    PartitionLimit {
        topic: String,
        count: u32,
        open: usize,
        max: usize,
    },
    /// A `[[topic]]` of the config: deleted, it would come back at the next start.
    #[error("topic `{topic}` is configured in [[topic]]; remove it from the config first")]
    Configured { topic: String },
    /// Being deleted: the name is free again once that has finished.
    #[error("topic `{topic}` is being deleted")]
    Deleting { topic: String },
    /// A create naming an option the existing topic has otherwise.
    #[error("topic `{topic}` exists with {what} {has}, not {asked}")]
    Conflict {
        topic: String,
        what: &'static str,
        has: String,
        asked: String,
    },
    /// The partition or its log failed; the text is the partition's, without any
    /// server path it may carry (those go to the log only).
    #[error("{}", without_paths(.0))]
    Partition(String),
    /// The actor that would answer has stopped or its mailbox is full.
    #[error("{}", without_paths(.0))]
    Unavailable(String),
}

/// `text` with each absolute path in it replaced by `<path>`: the texts of storage and
/// system errors may carry one, and a client is never told where the server keeps its
/// files. A path starts with `/` at the start of a word and runs to the next space or
/// one of ``:`'"),;``, or when quoted, to its closing quote.
pub fn without_paths(text: &str) -> Cow<'_, str> {
    let starts_path = |i: usize| {
        let before = text[..i].chars().next_back();
        let after = text[i + 1..].chars().next();
        before.is_none_or(|c| c.is_whitespace() || "`'\"(=[".contains(c))
            && after.is_some_and(|c| !c.is_whitespace() && !PATH_END.contains(c))
    };
    let mut out = String::new();
    let mut copied = 0;
    for (i, _) in text.match_indices('/') {
        if i < copied || !starts_path(i) {
            continue;
        }
        // A quoted path runs to its closing quote, spaces and all.
        let quote = text[..i]
            .chars()
            .next_back()
            .filter(|c| "`'\"".contains(*c));
        let end = text[i..]
            .find(|c: char| match quote {
                Some(q) => c == q,
                None => c.is_whitespace() || PATH_END.contains(c),
            })
            .map_or(text.len(), |n| i + n);
        out.push_str(&text[copied..i]);
        out.push_str("<path>");
        copied = end;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

const PATH_END: &str = ":`'\"),;";

impl From<actix::MailboxError> for TopicError {
    fn from(e: actix::MailboxError) -> Self {
        TopicError::Unavailable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_withheld_and_the_rest_kept() {
        let cases = [
            (
                "/var/lib/sy/demo/0: record at byte 0: too big",
                "<path>: record at byte 0: too big",
            ),
            (
                "cannot open `/srv/data x/demo/0/00000000000000000000.log`: denied",
                "cannot open `<path>`: denied",
            ),
            (
                "partition demo/0: No space left on device",
                "partition demo/0: No space left on device",
            ),
            ("a / b and 1/2", "a / b and 1/2"),
            ("(/tmp/a) /b", "(<path>) <path>"),
        ];
        for (text, want) in cases {
            assert_eq!(without_paths(text), want, "{text}");
        }
        let e = TopicError::Partition("/tmp/.tmpX/t/0: record at byte 0: r".into());
        assert_eq!(e.to_string(), "<path>: record at byte 0: r");
    }
}
