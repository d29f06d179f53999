//! [`FetchRecords`]: one read of a partition from an offset, held to
//! `topics.max_fetch_bytes` whatever the front end (the `broker` feature, HTTP, gRPC)
//! asked for: one `max_bytes = 1e9` fetch once stalled every client for seconds and
//! took the broker's memory to 2 GB.

use actix::prelude::*;
use switchyard_codecs::record::Record;

use super::TopicRegistry;
use crate::topic::partition::Fetch;
use crate::topic::TopicError;

/// The most a partition reads for one fetch, whatever it is asked: the largest
/// `topics.max_fetch_bytes` the config allows. Front ends hold reads to the configured
/// cap first; this bounds a `Fetch` that reaches a partition some other way.
pub const FETCH_CEILING_BYTES: usize = 64 << 20;

/// Reads `topic`'s `partition` from `from`, up to about `max_bytes` (the cap when
/// `None`, never more than the cap); at least one record when there is one, even if it
/// alone is larger.
#[derive(Debug, Message)]
#[rtype(result = "Result<Fetched, TopicError>")]
pub struct FetchRecords {
    pub topic: String,
    pub partition: u32,
    pub from: u64,
    pub max_bytes: Option<usize>,
}

#[derive(Debug)]
pub struct Fetched {
    pub records: Vec<Record>,
    /// The offset to fetch from next.
    pub next: u64,
    /// The request asked for more than `topics.max_fetch_bytes`: the read was held to
    /// this many bytes.
    pub capped_to: Option<usize>,
}

impl Handler<FetchRecords> for TopicRegistry {
    type Result = ResponseFuture<Result<Fetched, TopicError>>;

    fn handle(&mut self, m: FetchRecords, _: &mut Self::Context) -> Self::Result {
        let cap = self.settings.max_fetch_bytes;
        let asked = m.max_bytes.unwrap_or(cap);
        let capped_to = (asked > cap).then_some(cap);
        let part = self.topic(&m.topic).and_then(|t| t.partition(m.partition));
        let from = m.from;
        Box::pin(async move {
            let records = part?
                .send(Fetch {
                    from,
                    max_bytes: asked.min(cap),
                })
                .await?
                .map_err(TopicError::Partition)?;
            let next = records.last().map_or(from, |r| r.offset + 1);
            Ok(Fetched {
                records,
                next,
                capped_to,
            })
        })
    }
}
