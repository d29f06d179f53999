//! A topic client over real TCP for the topic tests: send raw bytes, read envelopes.

use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use switchyard::Config;
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// A config with the broker on port 0, storage in `dir`, and `extra` appended.
pub fn config(dir: &Path, extra: &str) -> Config {
    Config::parse(
        &format!(
            "[broker]\nbind = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\n{extra}\n[shutdown]\ngrace_ms = 1000\n",
            dir.display()
        ),
        "test",
    )
    .unwrap()
}

pub struct Client {
    pub s: TcpStream,
    codec: FrameCodec,
    buf: BytesMut,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        Client {
            s: TcpStream::connect(addr).await.unwrap(),
            codec: FrameCodec::detect(Limits::default()),
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    pub async fn next(&mut self) -> Envelope {
        loop {
            if let Some(Frame::Envelope(e)) = self.codec.decode(&mut self.buf).unwrap() {
                return e;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

pub fn label(e: &Envelope, name: &str) -> String {
    e.labels.get_str(name).unwrap_or_default().to_string()
}
