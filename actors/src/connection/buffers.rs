//! A connection's buffers follow its traffic. The read buffer is not allocated before
//! the first byte arrives, starts at [`MIN_READ`], and doubles (up to
//! [`READ_CHUNK`](super::READ_CHUNK)) whenever a read brings at least its size. Once
//! the connection has read nothing for `buffer_release` (`broker.buffer_release_ms`),
//! it gives the buffer back, with its spare output room: an idle connection holds no
//! buffer, and a busy one never frees one between reads (the release timer looks once
//! per quiet period, not once per read).
//!
//! The size in force (what the next read reserves) shows in the tree as
//! `read_buffer=N` (0: released, or nothing read yet) and, summed over connections, in
//! `/metrics` as `read_buffer_bytes`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use actix::prelude::*;
use bytes::BytesMut;

use super::{Connection, READ_CHUNK};

/// The first read buffer of a connection, and the one it starts again with after a
/// quiet spell: a ping and its kin fit many times over.
pub const MIN_READ: usize = 4 << 10;

impl Connection {
    /// After a read of `n` bytes (at least one): a read that brought the whole size in
    /// force asks for more next time, doubling until the size is above what it brought.
    pub(super) fn after_read(&mut self, n: usize, ctx: &mut Context<Self>) {
        self.read_size = self.read_size.max(MIN_READ);
        while n >= self.read_size && self.read_size < READ_CHUNK {
            self.read_size *= 2;
        }
        if self.read_size != self.shown_read_size {
            self.show_buffers();
        }
        if !self.release_armed {
            self.arm_release(ctx);
        }
    }

    /// Updates the tree detail and the broker-wide sum to the size in force (it
    /// changes rarely: on the first read, on growth, on release).
    fn show_buffers(&mut self) {
        let (now, was) = (self.read_size, self.shown_read_size);
        let gauge = &self.stats.read_buffer_bytes;
        if now > was {
            gauge.fetch_add((now - was) as u64, Relaxed);
        } else {
            gauge.fetch_sub((was - now) as u64, Relaxed);
        }
        self.shown_read_size = now;
        self.entry.set_detail(self.detail());
    }

    /// Takes the connection's size in force off the broker-wide sum (it is closing).
    pub(super) fn forget_buffers(&mut self) {
        let gauge = &self.stats.read_buffer_bytes;
        gauge.fetch_sub(self.shown_read_size as u64, Relaxed);
        self.shown_read_size = 0;
    }

    /// Looks again once the connection may have been quiet for `buffer_release`.
    fn arm_release(&mut self, ctx: &mut Context<Self>) {
        self.release_armed = true;
        let wait = self
            .settings
            .buffer_release
            .saturating_sub(self.last_activity.elapsed());
        ctx.run_later(wait.max(Duration::from_millis(1)), |act, ctx| {
            act.release_armed = false;
            act.release_if_quiet(ctx);
        });
    }

    fn release_if_quiet(&mut self, ctx: &mut Context<Self>) {
        if self.sock.closing().is_some() {
            return;
        }
        // A connection waiting for memory keeps its partial frame: the budget decides.
        if self.last_activity.elapsed() < self.settings.buffer_release || self.mem_wait {
            return self.arm_release(ctx);
        }
        self.sock.release_spare();
        if self.rbuf.is_empty() {
            self.rbuf = BytesMut::new();
            self.read_size = 0;
        } else {
            // A partial frame stays, without the room reserved for the rest of it.
            if self.rbuf.capacity() > self.rbuf.len() + MIN_READ {
                self.rbuf = BytesMut::from(&self.rbuf[..]);
            }
            self.read_size = MIN_READ;
        }
        self.charge_read();
        if self.read_size != self.shown_read_size {
            self.show_buffers();
        }
    }
}
