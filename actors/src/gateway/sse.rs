//! A subscription stream as server-sent events: one `record` event per record, whose
//! `id` is the stream's [`Cursor`] after it (what `Last-Event-ID` gives back on a
//! reconnect), and a `: keep-alive` comment whenever the stream has written nothing
//! for `gateway.stream_keepalive_ms`.
//!
//! The keep-alive is also how a client that vanished without closing its connection is
//! found: writing to it fails (after the kernel gives up on it), and the server drops
//! the stream. A client that closes or resets its connection is noticed at once, by the
//! server's read side (see [`super::http`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use super::cursor::Cursor;
use super::record_json;
use super::stream::{Delivered, StreamRx};

/// The comment written to an idle stream.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// The body of an SSE response.
#[derive(Debug)]
pub struct SseBody {
    rx: StreamRx,
    cursor: Cursor,
    every: Duration,
    idle: Pin<Box<Sleep>>,
}

impl SseBody {
    /// Its ids go on from `cursor` (the client's `Last-Event-ID`, or empty).
    pub fn new(rx: StreamRx, cursor: Cursor, keepalive: Duration) -> Self {
        SseBody {
            rx,
            cursor,
            every: keepalive,
            idle: Box::pin(tokio::time::sleep(keepalive)),
        }
    }

    fn event(&mut self, d: &Delivered) -> Bytes {
        self.cursor.advance(d.partition, d.record.offset);
        let data = record_json(&d.topic, d.partition, &d.record);
        Bytes::from(format!(
            "id: {}\nevent: record\ndata: {data}\n\n",
            self.cursor
        ))
    }
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.rx).poll_next(cx) {
            Poll::Ready(Some(d)) => {
                this.idle.as_mut().reset(Instant::now() + this.every);
                return Poll::Ready(Some(Ok(this.event(&d))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if this.idle.as_mut().poll(cx).is_ready() {
            this.idle.as_mut().reset(Instant::now() + this.every);
            return Poll::Ready(Some(Ok(Bytes::from_static(KEEP_ALIVE))));
        }
        Poll::Pending
    }
}
