//! Size limits shared by every decoder.

/// Bounds a decoder enforces before it buffers input.
///
/// A frame whose header declares more than these is rejected as soon as the header
/// (or the offending label line) has been read: the payload is never buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest envelope on the wire: header line + label lines and values + payload.
    pub max_frame_bytes: usize,
    /// Most labels one envelope may carry.
    pub max_labels: usize,
    /// Longest label value.
    pub max_label_bytes: usize,
    /// Longest line: a maze line, an envelope header line or a label line, terminator included.
    pub max_line_bytes: usize,
    /// A well-formed envelope over `max_frame_bytes` but at most this long (as its header
    /// and label lines announce it) is skipped unbuffered and reported as
    /// [`Frame::Oversize`](crate::Frame::Oversize); a longer one is an error, since a
    /// client announcing that much is more likely broken than merely generous. 0: never
    /// skip.
    pub max_skip_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1 << 20,
            max_labels: 64,
            max_label_bytes: 64 << 10,
            max_line_bytes: 4096,
            max_skip_bytes: 64 << 20,
        }
    }
}
