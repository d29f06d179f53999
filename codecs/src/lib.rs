//! Every byte format switchyard speaks, as pure functions and tokio-util codecs.
//!
//! No actix, no runtime, no I/O: each module turns bytes into typed values and back,
//! and every limit is checked before a byte of payload is buffered.
//!
//! Modules:
//! - [`limits`]: the size limits every decoder enforces ([`Limits`]).
//! - [`number`]: canonical decimal numbers, the only form switchyard reads and writes.
//! - [`maze`]: follower-maze lines (`seq|T[|from[|to]]`) and the user-id line.
//! - [`envelope`]: the dipper envelope ([`Envelope`], [`Labels`]) and its encoder.
//! - [`scan`]: the cheap `check` pass over envelope bytes that finds a frame's extent.
//! - [`record`]: the stored record of a partition log (length, CRC-32C, offset, timestamp,
//!   key, labels, value).
//! - [`frame`]: [`FrameCodec`], one tokio-util `Decoder`/`Encoder` for both formats.
//! - [`error`]: the typed errors ([`FrameError`], [`MazeError`], [`EnvelopeError`]).
//!
//! The wire formats, with byte examples and the places where switchyard deliberately
//! differs from the reference implementations, are documented in `codecs/PROTOCOL.md`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod envelope;
pub mod error;
pub mod frame;
pub mod limits;
pub mod maze;
pub mod number;
pub mod record;
pub mod scan;

pub use envelope::{Envelope, Labels};
pub use error::{EnvelopeError, FrameError, FrameErrorKind, MazeError, MazeErrorKind};
pub use frame::{Frame, FrameCodec, Mode, Oversize};
pub use limits::Limits;
pub use maze::{MazeEvent, MazeKind, MazeLine};
