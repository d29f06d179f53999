//! A partition's reads ([`Fetch`]), a group member's subscription handed off
//! ([`Revoke`]), and its end ([`Retire`], a topic delete).

use actix::prelude::*;
use switchyard_codecs::record::Record;
use tracing::info;

use super::{storage_error, Fetch, Partition, Retire};
use crate::storage::StorageError;
use crate::topic::subscribers::Revoke;

impl Handler<Revoke> for Partition {
    type Result = Option<(u64, u64)>;

    fn handle(&mut self, r: Revoke, _: &mut Self::Context) -> Self::Result {
        self.subs.take(&r.key)
    }
}

impl Handler<Fetch> for Partition {
    type Result = Result<Vec<Record>, String>;

    fn handle(&mut self, f: Fetch, _: &mut Self::Context) -> Self::Result {
        let max = f.max_bytes.min(crate::topic::registry::FETCH_CEILING_BYTES);
        let r = self.log()?.read_records(f.from, max, f.max_records);
        if let Err(StorageError::Damaged { .. }) = &r {
            self.unreadable_reads += 1;
        }
        r.map_err(|e| storage_error(&self.name, e))
    }
}

impl Handler<Retire> for Partition {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        let why = format!("partition {}: its topic was deleted", self.name);
        for (_, tx) in self.pending.drain(..) {
            let _ = tx.send(Err(why.clone()));
        }
        self.fail_waiters(&why);
        self.subs.end_all_deleted();
        // Closes the segment files now; a sync still running on the blocking pool
        // holds its own handle and finishes on its own.
        self.log = None;
        self.failed = None;
        info!(partition = %self.name, "partition retired");
        ctx.stop();
    }
}
