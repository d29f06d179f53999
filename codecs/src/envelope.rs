//! The dipper envelope: `channel subject numLabels size LF`, labels, payload.
//!
//! Label values and the payload are [`Bytes`] slices of the buffer they were read into,
//! so one decoded frame can be handed to many subscribers without a copy.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::{EnvelopeError, Token};
use crate::number::write_u64;

/// Label names and values. Names are unique: inserting a name again replaces its value,
/// as the reference reader does with duplicate names on the wire ("last one wins").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(Vec<(ByteString, Bytes)>);

impl Labels {
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        Labels(Vec::with_capacity(n))
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name.
    pub fn insert(&mut self, name: impl Into<ByteString>, value: impl Into<Bytes>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The raw value of `name`.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value of `name` when it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn remove(&mut self, name: &str) -> Option<Bytes> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.0.iter().map(|(n, v)| (&**n, v))
    }
}

/// One dipper message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub channel: ByteString,
    pub subject: ByteString,
    pub labels: Labels,
    pub payload: Bytes,
}

impl Envelope {
    /// A message with no labels and no payload, such as `command ping`.
    pub fn new(channel: impl Into<ByteString>, subject: impl Into<ByteString>) -> Self {
        Envelope {
            channel: channel.into(),
            subject: subject.into(),
            labels: Labels::new(),
            payload: Bytes::new(),
        }
    }

    pub fn with_label(mut self, name: impl Into<ByteString>, value: impl Into<Bytes>) -> Self {
        self.labels.insert(name, value);
        self
    }

    pub fn with_payload(mut self, payload: impl Into<Bytes>) -> Self {
        self.payload = payload.into();
        self
    }

    /// `channel:subject`, the key messages are dispatched by.
    pub fn is(&self, channel: &str, subject: &str) -> bool {
        self.channel == channel && self.subject == subject
    }

    /// Bytes this envelope takes on the wire.
    pub fn encoded_len(&self) -> usize {
        let digits = |n: usize| n.checked_ilog10().unwrap_or(0) as usize + 1;
        let header = self.channel.len()
            + self.subject.len()
            + digits(self.labels.len())
            + digits(self.payload.len())
            + 4;
        let labels: usize = self
            .labels
            .iter()
            .map(|(n, v)| n.len() + digits(v.len()) + 2 + v.len())
            .sum();
        header + labels + self.payload.len()
    }

    /// Appends the canonical wire form: decimal numbers, labels in insertion order.
    ///
    /// Refuses a channel, subject or label name that is empty or holds whitespace,
    /// since a reader would split it into other fields.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EnvelopeError> {
        check_token("channel", &self.channel)?;
        check_token("subject", &self.subject)?;
        for (name, _) in self.labels.iter() {
            check_token("label name", name)?;
        }
        dst.reserve(self.encoded_len());
        dst.put_slice(self.channel.as_bytes());
        dst.put_u8(b' ');
        dst.put_slice(self.subject.as_bytes());
        dst.put_u8(b' ');
        write_u64(dst, self.labels.len() as u64);
        dst.put_u8(b' ');
        write_u64(dst, self.payload.len() as u64);
        dst.put_u8(b'\n');
        for (name, value) in self.labels.iter() {
            dst.put_slice(name.as_bytes());
            dst.put_u8(b' ');
            write_u64(dst, value.len() as u64);
            dst.put_u8(b'\n');
            dst.put_slice(value);
        }
        dst.put_slice(&self.payload);
        Ok(())
    }
}

fn check_token(field: &'static str, tok: &str) -> Result<(), EnvelopeError> {
    if tok.is_empty() || tok.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(EnvelopeError::InvalidToken {
            field,
            token: Token::new(tok.as_bytes()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_canonically() {
        let env = Envelope::new("rpc", "return")
            .with_label("rpcID", "7")
            .with_payload(&b"{\"a\": 1}"[..]);
        let mut out = BytesMut::new();
        env.encode(&mut out).unwrap();
        assert_eq!(&out[..], b"rpc return 1 8\nrpcID 1\n7{\"a\": 1}");
        assert_eq!(env.encoded_len(), out.len());
    }

    #[test]
    fn refuses_tokens_that_break_framing() {
        let mut out = BytesMut::new();
        for env in [
            Envelope::new("a b", "c"),
            Envelope::new("a", ""),
            Envelope::new("a", "b").with_label("x y", "v"),
        ] {
            assert!(matches!(
                env.encode(&mut out),
                Err(EnvelopeError::InvalidToken { .. })
            ));
        }
        assert!(out.is_empty());
    }

    #[test]
    fn duplicate_label_last_wins() {
        let mut l = Labels::new();
        l.insert("k", "x");
        l.insert("k", "y");
        assert_eq!(l.len(), 1);
        assert_eq!(l.get_str("k"), Some("y"));
        assert_eq!(l.remove("k").as_deref(), Some(&b"y"[..]));
        assert!(l.is_empty());
    }
}
