//! The driver side of the stdio framing, as the reference library does it: one writer
//! lock so frames never interleave, labels in a random order (Go map order), and a
//! reader that logs a malformed envelope and goes on with the next line.

use std::io::{Read, Write};
use std::sync::Mutex;

use bytes::BytesMut;
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits, Mode};
use tokio_util::codec::Decoder;

/// Serialises frames onto stdout (or, remote, the broker connection).
pub struct Writer {
    out: Mutex<Box<dyn Write + Send>>,
    seed: Mutex<u64>,
}

impl Writer {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Writer {
            out: Mutex::new(out),
            seed: Mutex::new(seed),
        }
    }

    /// Writes one frame, its labels shuffled the way a Go map iterates.
    pub fn send(&self, env: &Envelope) {
        let mut labels: Vec<(String, bytes::Bytes)> = env
            .labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        {
            let mut s = self.seed.lock().unwrap_or_else(|p| p.into_inner());
            for i in (1..labels.len()).rev() {
                *s ^= *s << 13;
                *s ^= *s >> 7;
                *s ^= *s << 17;
                labels.swap(i, (*s % (i as u64 + 1)) as usize);
            }
        }
        let mut shuffled = Envelope::new(env.channel.clone(), env.subject.clone())
            .with_payload(env.payload.clone());
        for (n, v) in labels {
            shuffled = shuffled.with_label(n, v);
        }
        let mut buf = BytesMut::new();
        if shuffled.encode(&mut buf).is_err() {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(&buf);
        let _ = out.flush();
    }
}

/// What the reader yields.
pub enum Input {
    Frame(Envelope),
    Invalid(String),
    Eof,
}

/// Reads frames from stdin (or the broker connection); after a malformed envelope it reads on from the next line,
/// as `fmt.Fscanln` does.
pub struct Reader {
    input: Box<dyn Read + Send>,
    codec: FrameCodec,
    buf: BytesMut,
    eof: bool,
}

fn limits() -> Limits {
    Limits {
        max_frame_bytes: 64 << 20,
        max_labels: 1024,
        max_label_bytes: 1 << 20,
        max_line_bytes: 64 << 10,
        ..Limits::default()
    }
}

impl Reader {
    pub fn new(input: Box<dyn Read + Send>) -> Self {
        Reader {
            input,
            codec: FrameCodec::new(Mode::Envelope, limits()),
            buf: BytesMut::new(),
            eof: false,
        }
    }

    pub fn next(&mut self) -> Input {
        loop {
            {
                let decoded = if self.eof {
                    self.codec.decode_eof(&mut self.buf)
                } else {
                    self.codec.decode(&mut self.buf)
                };
                match decoded {
                    Ok(Some(Frame::Envelope(env))) => return Input::Frame(env),
                    Ok(Some(Frame::Oversize(o))) => {
                        return Input::Invalid(format!(
                            "frame of {} bytes, at most {} allowed",
                            o.size, o.max
                        ))
                    }
                    Ok(Some(Frame::Maze(_))) => {}
                    Ok(None) if self.eof => return Input::Eof,
                    Ok(None) => {}
                    Err(e) => {
                        // The codec has consumed the bad line, as Fscanln does.
                        if self.eof {
                            return Input::Eof;
                        }
                        return Input::Invalid(e.kind.to_string());
                    }
                }
            }
            if self.eof {
                return Input::Eof;
            }
            let mut chunk = [0u8; 8192];
            match self.input.read(&mut chunk) {
                Ok(0) | Err(_) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}
