//! The registry's side of idempotent publish: settling first publishes into the
//! [`DedupIndex`], its counters, expiry, and rebuilding a topic's ids at start.
//!
//! [`DedupIndex`]: crate::topic::dedup::DedupIndex

use actix::prelude::*;
use tracing::{info, warn};

use super::batch::Settle;
use super::TopicRegistry;
use crate::topic::dedup::{self, DedupStats};
use crate::topic::wire::now_ms;

/// The index's counters, for `/metrics`.
#[derive(Debug, Message)]
#[rtype(result = "DedupStats")]
pub struct GetDedupStats;

impl Handler<GetDedupStats> for TopicRegistry {
    type Result = MessageResult<GetDedupStats>;

    fn handle(&mut self, _: GetDedupStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.dedup.stats())
    }
}

impl Handler<Settle> for TopicRegistry {
    type Result = ();

    fn handle(&mut self, Settle(all): Settle, _: &mut Self::Context) {
        let mut evicted = 0;
        for (topic, id, at_ms, answer) in all {
            evicted += self.dedup.settle(&topic, &id, at_ms, &answer);
        }
        if evicted > 0 {
            self.evicted_unlogged += evicted;
            self.log_evictions();
        }
    }
}

impl TopicRegistry {
    /// Warns about ids evicted early, at most once a second (the timer reports the
    /// rest of a burst).
    pub(super) fn log_evictions(&mut self) {
        if self.evicted_unlogged == 0 {
            return;
        }
        if let Some(suppressed) = self.eviction_log.allow() {
            let evicted = std::mem::take(&mut self.evicted_unlogged);
            let max_ids = self.dedup.settings().max_ids;
            warn!(evicted, max_ids, suppressed, "msg_id index full (topics.dedup_max_ids): the oldest ids are forgotten before their window, their duplicates are stored again");
        }
    }

    /// Once a second: ids past their window are forgotten, and a burst of evictions
    /// that ended since the last warning is reported.
    pub(super) fn dedup_tick(&mut self) {
        self.dedup.expire(now_ms());
        self.log_evictions();
        let st = self.dedup.stats();
        // An index never used shows nothing: the tree of an idle broker stays as it was.
        if st == self.dedup_shown {
            return;
        }
        self.dedup_shown = st;
        self.entry.set_detail(format!(
            "msg_ids {} of {}, {} duplicates, {} evicted",
            st.ids,
            self.dedup.settings().max_ids,
            st.duplicates,
            st.evictions
        ));
    }

    /// Where the ids of the last window start (ms since the epoch), or `None` when
    /// dedup is off.
    pub(super) fn ids_since(&self) -> Option<u64> {
        let window = self.dedup.settings().window_ms;
        (window > 0).then(|| now_ms().saturating_sub(window))
    }

    /// Puts the ids read back from a topic's partitions ([`dedup::rebuild`]) into the
    /// index, oldest first over all partitions so that expiry and eviction go by age.
    pub(super) fn restore_ids(&mut self, topic: &str, mut found: Vec<dedup::Found>, records: u64) {
        if found.is_empty() {
            return;
        }
        found.sort_by_key(|f| f.0);
        let with_id = found.len();
        for (at_ms, partition, offset, id) in found {
            self.dedup.restore(topic, id, partition, offset, at_ms);
        }
        info!(topic = %topic, records, with_id, "msg_id index rebuilt from the last window");
    }
}
