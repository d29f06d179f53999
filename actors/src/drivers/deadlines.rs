//! The deadline of every RPC call in flight, served by one timer set for the earliest
//! (see [`super::rpc`] for why not a timer per call).

use std::time::Instant;

use actix::prelude::*;
use tracing::warn;

use super::host::DriverHost;

impl DriverHost {
    /// Sets the timer for the earliest deadline, unless it is set for that or sooner. A
    /// timer that fires for a call already answered finds nothing due and is set again.
    pub(super) fn arm_deadline(&mut self, ctx: &mut Context<Self>) {
        let Some(next) = self.rpc.next_deadline() else {
            return;
        };
        if let Some((at, handle)) = self.rpc.timer {
            if at <= next {
                return;
            }
            ctx.cancel_future(handle);
        }
        let wait = next.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(wait, |act, ctx| {
            act.rpc.timer = None;
            act.expire_calls(ctx);
            act.arm_deadline(ctx);
        });
        self.rpc.timer = Some((next, handle));
    }

    /// Answers `error=timeout` to the calls whose deadline has passed.
    fn expire_calls(&mut self, ctx: &mut Context<Self>) {
        for ((caller, rid), call) in self.rpc.expire(Instant::now()) {
            let timeout_ms = call
                .deadline
                .saturating_duration_since(call.started)
                .as_millis() as u64;
            warn!(caller = %caller, rpc_id = %rid, target = %call.target, method = %call.method, timeout_ms, "rpc call timed out");
            self.answer(&caller, &rid, call.local, Err("timeout".into()), ctx);
        }
    }
}
