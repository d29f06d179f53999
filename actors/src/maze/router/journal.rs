//! The maze journal: with `[maze] topic` set, every applied event is appended, in
//! sequence order, to partition 0 of that topic, so the stream can be replayed.

use bytes::Bytes;
use switchyard_codecs::Labels;

use crate::storage::log::Append;
use crate::topic::registry::{Publish, TopicsSlot};
use crate::topic::TopicRegistry;

#[derive(Debug)]
pub struct Journal {
    topic: String,
    registry: TopicsSlot,
    pending: Vec<Append>,
}

impl Journal {
    pub fn new(topic: String, registry: TopicsSlot) -> Self {
        Journal {
            topic,
            registry,
            pending: Vec::new(),
        }
    }

    /// Keeps one applied event's text (without its line end).
    pub fn record(&mut self, line: &[u8]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.pending.push(Append {
            timestamp_ms: now,
            key: None,
            labels: Labels::new(),
            value: Bytes::copy_from_slice(line),
        });
    }

    /// What was recorded since the last call, as one publish, and where to send it.
    pub fn take(&mut self) -> Option<(actix::Addr<TopicRegistry>, Publish)> {
        if self.pending.is_empty() {
            return None;
        }
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let records = std::mem::take(&mut self.pending);
        Some((
            registry,
            Publish {
                topic: self.topic.clone(),
                key: None,
                partition: Some(0),
                records,
            },
        ))
    }
}
