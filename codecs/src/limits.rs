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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1 << 20,
            max_labels: 64,
            max_label_bytes: 64 << 10,
            max_line_bytes: 4096,
        }
    }
}
