//! The client's end of a subscription stream ([`StreamRx`]), polled by the HTTP or gRPC
//! server that writes the stream, and the [`Progress`] it reports to its
//! [`super::stream::StreamSink`]: what the server has taken to write, per partition.
//!
//! A server takes the next record only after it has put the previous ones in its write
//! buffer, and it drops the stream when its client goes away (a closed or reset
//! connection, a failed write, a cancelled HTTP/2 stream). The sink commits a group's
//! offsets from this progress, one commit round late (see the sink), so what is
//! committed was taken and then survived a round of an open connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use switchyard_codecs::record::Record;
use tokio::sync::mpsc;

use crate::budget::{record_bytes, Window};

/// One record for the client.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub topic: String,
    pub partition: u32,
    pub record: Record,
}

/// Per partition, the offset after the last record the server took to write.
#[derive(Debug, Default)]
pub struct Progress(Mutex<HashMap<u32, u64>>);

impl Progress {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note(&self, partition: u32, next: u64) {
        self.lock().insert(partition, next);
    }

    pub fn snapshot(&self) -> HashMap<u32, u64> {
        self.lock().clone()
    }

    /// The partition moved to another member: what was taken of it is not this
    /// stream's to commit any more.
    pub fn forget(&self, partition: u32) {
        self.lock().remove(&partition);
    }
}

/// The client's end of a stream: each record taken from it is released from the
/// stream's window and noted in its progress.
#[derive(Debug)]
pub struct StreamRx {
    rx: mpsc::Receiver<Delivered>,
    window: Arc<Window>,
    progress: Arc<Progress>,
}

impl StreamRx {
    pub fn new(
        rx: mpsc::Receiver<Delivered>,
        window: Arc<Window>,
        progress: Arc<Progress>,
    ) -> Self {
        StreamRx {
            rx,
            window,
            progress,
        }
    }
}

impl futures_util::Stream for StreamRx {
    type Item = Delivered;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivered>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(d)) = &polled {
            self.window.release(record_bytes(&d.record));
            self.progress
                .note(d.partition, d.record.offset.saturating_add(1));
        }
        polled
    }
}
