//! Rules between `[topics]` and `[[topic]]`: the partition limits.

use super::drivers::at_entry;
use super::error::at_key;
use super::{Config, ConfigError};

impl Config {
    /// Every topic the config makes fits `topics.max_partitions_per_topic`, and all of
    /// them together `topics.max_partitions` (topics already on disk are checked when
    /// the broker starts).
    pub(super) fn validate_topics(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let t = &self.topics;
        let per_topic = t.max_partitions_per_topic.get();
        if t.default_partitions.get() > per_topic {
            return Err(at_key(
                text,
                file,
                "topics",
                "default_partitions",
                format!(
                    "expected at most topics.max_partitions_per_topic ({per_topic}), got {}",
                    t.default_partitions.get()
                ),
            ));
        }
        let mut total = 0;
        for (i, topic) in self.topic.iter().enumerate() {
            let n = topic.partitions.get();
            if n > per_topic {
                return Err(at_entry(
                    text,
                    file,
                    "topic",
                    i,
                    "partitions",
                    format!(
                        "expected at most topics.max_partitions_per_topic ({per_topic}), got {n}"
                    ),
                ));
            }
            total += n;
            if total > t.max_partitions.get() {
                return Err(at_entry(
                    text,
                    file,
                    "topic",
                    i,
                    "partitions",
                    format!(
                        "the [[topic]] tables up to `{}` have {total} partitions, over topics.max_partitions ({})",
                        topic.name,
                        t.max_partitions.get()
                    ),
                ));
            }
        }
        Ok(())
    }
}
