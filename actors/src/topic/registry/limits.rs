//! How many partitions topics may have: each one is a directory, open segment and index
//! files and an actor, so three `topic create … partitions 4096` requests once used all
//! 20,000 file descriptors and the broker stopped accepting.

use super::{TopicRegistry, TopicSpec};
use crate::topic::TopicError;

impl TopicRegistry {
    /// Partitions of every open topic.
    pub(super) fn partitions_open(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// Whether a new topic of `spec` fits `topics.max_partitions_per_topic` and
    /// `topics.max_partitions`. An existing topic always passes (creating it again
    /// opens nothing); topics already on disk at start are opened whatever the limits
    /// and count toward the total.
    pub(super) fn check_limits(&self, spec: &TopicSpec) -> Result<(), TopicError> {
        if self.topics.contains_key(&spec.name) {
            return Ok(());
        }
        let per_topic = self.settings.max_partitions_per_topic;
        if spec.partitions > per_topic {
            return Err(TopicError::TooManyPartitions {
                topic: spec.name.clone(),
                count: spec.partitions,
                max: per_topic,
            });
        }
        let open = self.partitions_open();
        let max = self.settings.max_partitions;
        if open + spec.partitions as usize > max {
            return Err(TopicError::PartitionLimit {
                topic: spec.name.clone(),
                count: spec.partitions,
                open,
                max,
            });
        }
        Ok(())
    }
}
