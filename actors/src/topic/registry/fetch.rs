//! [`FetchRecords`]: one read of a partition from an offset, held to
//! `topics.max_fetch_bytes` whatever the front end (the `broker` feature, HTTP, gRPC)
//! asked for: one `max_bytes = 1e9` fetch once stalled every client for seconds and
//! took the broker's memory to 2 GB.

use actix::prelude::*;
use switchyard_codecs::record::{self, Record};

use super::TopicRegistry;
use crate::topic::partition::Fetch;
use crate::topic::TopicError;

/// The most a partition reads for one fetch, whatever it is asked: the largest
/// `topics.max_fetch_bytes` the config allows. Front ends hold reads to the configured
/// cap first; this bounds a `Fetch` that reaches a partition some other way.
pub const FETCH_CEILING_BYTES: usize = 64 << 20;

/// Reads `topic`'s `partition` from `from`, up to about `max_bytes` (the cap when
/// `None`, never more than the cap) and at most `max_records` (`None`: no count); at
/// least one record when there is one, even if it alone is larger.
#[derive(Debug, Message)]
#[rtype(result = "Result<Fetched, TopicError>")]
pub struct FetchRecords {
    pub topic: String,
    pub partition: u32,
    pub from: u64,
    pub max_bytes: Option<usize>,
    pub max_records: Option<usize>,
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
                    max_records: m.max_records.unwrap_or(usize::MAX),
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

/// Reads every partition of `topic` (a fetch that names none): partition `p` from
/// `from[p]`, else `default_from`. `max_records` and the byte cap are shared: each
/// partition is offered an even share of what is left, in partition order, so one
/// full partition cannot crowd the others out, and the whole answer stays within the
/// cap (plus at most one record, read whole).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(u32, Fetched)>, TopicError>")]
pub struct FetchEvery {
    pub topic: String,
    pub from: std::collections::BTreeMap<u32, u64>,
    pub default_from: u64,
    pub max_bytes: Option<usize>,
    pub max_records: usize,
}

impl Handler<FetchEvery> for TopicRegistry {
    type Result = ResponseFuture<Result<Vec<(u32, Fetched)>, TopicError>>;

    fn handle(&mut self, m: FetchEvery, _: &mut Self::Context) -> Self::Result {
        let cap = self.settings.max_fetch_bytes;
        let asked = m.max_bytes.unwrap_or(cap);
        let capped_to = (asked > cap).then_some(cap);
        let parts = self.topic(&m.topic).map(|t| t.partitions.clone());
        Box::pin(async move {
            let parts = parts?;
            let mut bytes_left = asked.min(cap);
            let mut records_left = m.max_records;
            let mut out = Vec::with_capacity(parts.len());
            for (i, part) in parts.iter().enumerate() {
                let p = u32::try_from(i).unwrap_or(u32::MAX);
                let from = m.from.get(&p).copied().unwrap_or(m.default_from);
                let left = parts.len() - i;
                let records = if bytes_left == 0 || records_left == 0 {
                    Vec::new()
                } else {
                    part.send(Fetch {
                        from,
                        max_bytes: bytes_left.div_ceil(left),
                        max_records: records_left.div_ceil(left),
                    })
                    .await?
                    .map_err(TopicError::Partition)?
                };
                let taken: usize = records.iter().map(record::encoded_len).sum();
                bytes_left = bytes_left.saturating_sub(taken);
                records_left = records_left.saturating_sub(records.len());
                let next = records.last().map_or(from, |r| r.offset + 1);
                out.push((
                    p,
                    Fetched {
                        records,
                        next,
                        capped_to,
                    },
                ));
            }
            Ok(out)
        })
    }
}
