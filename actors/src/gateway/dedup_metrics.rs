//! `/metrics` for idempotent publish (the topics' `msg_id` index).

use super::metrics::Out;

/// Idempotent publish: duplicates answered, ids held, ids evicted early.
pub(super) fn write(o: &mut Out, d: &crate::topic::dedup::DedupStats) {
    o.one(
        "publish_duplicates_total",
        "counter",
        "Publishes whose msg_id was stored before within topics.dedup_window_ms: acked like the first, not stored.",
        d.duplicates,
    );
    o.one(
        "dedup_ids",
        "gauge",
        "msg_ids remembered now, over all topics (at most topics.dedup_max_ids).",
        d.ids,
    );
    o.one(
        "dedup_evictions_total",
        "counter",
        "msg_ids forgotten before their window because the index held topics.dedup_max_ids.",
        d.evictions,
    );
}
