//! The stored record: how a partition log keeps each message on disk.
//!
//! ```text
//! 0   len        u32 BE   bytes after this field
//! 4   crc        u32 BE   CRC-32C of every byte after this field
//! 8   offset     u64 BE
//! 16  timestamp  u64 BE   milliseconds since the Unix epoch
//! 24  key_len    u32 BE   u32::MAX: no key
//!     key
//!     labels     u16 BE   count, then per label: name_len u16, name, value_len u32, value
//!     value_len  u32 BE
//!     value
//! ```
//!
//! [`check`] looks at the length and the CRC only; [`parse`] slices the fields out of a
//! checked frame without copying.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::envelope::Labels;

/// `len` and `crc`.
pub const HEADER: usize = 8;
/// The smallest `len`: crc, offset, timestamp, key_len, label count, value_len.
const MIN_LEN: usize = 4 + 8 + 8 + 4 + 2 + 4;
const NO_KEY: u32 = u32::MAX;

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub timestamp_ms: u64,
    pub key: Option<Bytes>,
    pub labels: Labels,
    pub value: Bytes,
}

/// Why bytes are not a whole, valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record of {len} bytes, at most {max} allowed")]
    Oversize { len: usize, max: usize },
    #[error("record length {len} is below the minimum {min}")]
    TooShort { len: usize, min: usize },
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// A record to encode, borrowed: the log writes appends without copying them into a
/// [`Record`] first.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub offset: u64,
    pub timestamp_ms: u64,
    pub key: Option<&'a [u8]>,
    pub labels: &'a Labels,
    pub value: &'a [u8],
}

impl Record {
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            key: self.key.as_deref(),
            labels: &self.labels,
            value: &self.value,
        }
    }
}

/// Bytes `rec` takes on disk.
pub fn encoded_len(rec: &Record) -> usize {
    encoded_len_ref(&rec.as_ref())
}

pub fn encoded_len_ref(rec: &RecordRef<'_>) -> usize {
    let labels: usize = rec
        .labels
        .iter()
        .map(|(n, v)| 2 + n.len() + 4 + v.len())
        .sum();
    HEADER + MIN_LEN - 4 + rec.key.map_or(0, <[u8]>::len) + labels + rec.value.len()
}

/// Appends `rec`. Names and values longer than their length fields are refused.
pub fn encode(rec: &Record, dst: &mut BytesMut) -> Result<(), RecordError> {
    encode_ref(&rec.as_ref(), dst)
}

/// Appends a borrowed record.
pub fn encode_ref(rec: &RecordRef<'_>, dst: &mut BytesMut) -> Result<(), RecordError> {
    if rec.labels.len() > usize::from(u16::MAX) {
        return Err(RecordError::Malformed("more than 65535 labels"));
    }
    let total = encoded_len_ref(rec);
    let len = u32::try_from(total - 4).map_err(|_| RecordError::Oversize {
        len: total,
        max: u32::MAX as usize,
    })?;
    let start = dst.len();
    dst.reserve(total);
    dst.put_u32(len);
    dst.put_u32(0);
    dst.put_u64(rec.offset);
    dst.put_u64(rec.timestamp_ms);
    match rec.key {
        Some(k) => {
            let n = u32::try_from(k.len())
                .ok()
                .filter(|n| *n != NO_KEY)
                .ok_or(RecordError::Malformed("key too long"))?;
            dst.put_u32(n);
            dst.put_slice(k);
        }
        None => dst.put_u32(NO_KEY),
    }
    dst.put_u16(rec.labels.len() as u16);
    for (name, value) in rec.labels.iter() {
        let n =
            u16::try_from(name.len()).map_err(|_| RecordError::Malformed("label name too long"))?;
        dst.put_u16(n);
        dst.put_slice(name.as_bytes());
        dst.put_u32(value.len() as u32);
        dst.put_slice(value);
    }
    dst.put_u32(rec.value.len() as u32);
    dst.put_slice(rec.value);
    let crc = crc32c::crc32c(&dst[start + HEADER..]);
    dst[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// The length of the whole record at the start of `buf` once it is all there and its
/// CRC matches; `Ok(None)` while bytes are missing.
pub fn check(buf: &[u8], max: usize) -> Result<Option<usize>, RecordError> {
    let Some(len) = buf
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    else {
        return Ok(None);
    };
    if len < MIN_LEN {
        return Err(RecordError::TooShort { len, min: MIN_LEN });
    }
    if len + 4 > max {
        return Err(RecordError::Oversize { len: len + 4, max });
    }
    let Some(rec) = buf.get(..len + 4) else {
        return Ok(None);
    };
    let stored = u32::from_be_bytes([rec[4], rec[5], rec[6], rec[7]]);
    let computed = crc32c::crc32c(&rec[HEADER..]);
    if stored != computed {
        return Err(RecordError::Crc { stored, computed });
    }
    Ok(Some(len + 4))
}

/// Reads the offset of a checked record without parsing the rest.
pub fn offset_of(frame: &[u8]) -> Option<u64> {
    frame
        .get(8..16)
        .map(|b| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
}

/// Slices a checked record (exactly the bytes [`check`] measured) into its fields.
pub fn parse(frame: Bytes) -> Result<Record, RecordError> {
    let short = RecordError::Malformed("field runs past the end");
    let mut cur = frame.slice(HEADER..);
    let take = |cur: &mut Bytes, n: usize| {
        if cur.len() >= n {
            Ok(cur.split_to(n))
        } else {
            Err(short.clone())
        }
    };
    if cur.len() < 8 + 8 + 4 {
        return Err(short);
    }
    let offset = cur.get_u64();
    let timestamp_ms = cur.get_u64();
    let key = match cur.get_u32() {
        NO_KEY => None,
        n => Some(take(&mut cur, n as usize)?),
    };
    let count = take(&mut cur, 2)?.get_u16();
    let mut labels = Labels::new();
    for _ in 0..count {
        let n = take(&mut cur, 2)?.get_u16() as usize;
        let name = ByteString::try_from(take(&mut cur, n)?)
            .map_err(|_| RecordError::Malformed("label name is not utf-8"))?;
        let v = take(&mut cur, 4)?.get_u32() as usize;
        labels.insert(name, take(&mut cur, v)?);
    }
    let v = take(&mut cur, 4)?.get_u32() as usize;
    let value = take(&mut cur, v)?;
    if !cur.is_empty() {
        return Err(RecordError::Malformed("bytes after the value"));
    }
    Ok(Record {
        offset,
        timestamp_ms,
        key,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: u64) -> Record {
        let mut labels = Labels::new();
        labels.insert("id", "a1");
        Record {
            offset,
            timestamp_ms: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k")),
            labels,
            value: Bytes::from_static(b"hello"),
        }
    }

    #[test]
    fn round_trip_and_length() {
        let mut buf = BytesMut::new();
        let r = rec(7);
        encode(&r, &mut buf).unwrap();
        assert_eq!(buf.len(), encoded_len(&r));
        assert_eq!(check(&buf, 1 << 20), Ok(Some(buf.len())));
        assert_eq!(offset_of(&buf), Some(7));
        assert_eq!(parse(buf.freeze()).unwrap(), r);
        let bare = Record {
            key: None,
            labels: Labels::new(),
            value: Bytes::new(),
            ..rec(0)
        };
        let mut buf = BytesMut::new();
        encode(&bare, &mut buf).unwrap();
        assert_eq!(parse(buf.freeze()).unwrap(), bare);
    }

    #[test]
    fn partial_corrupt_and_oversize() {
        let mut buf = BytesMut::new();
        encode(&rec(1), &mut buf).unwrap();
        for cut in 0..buf.len() {
            assert_eq!(check(&buf[..cut], 1 << 20), Ok(None), "cut {cut}");
        }
        let mut bad = buf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(check(&bad, 1 << 20), Err(RecordError::Crc { .. })));
        assert!(matches!(check(&buf, 16), Err(RecordError::Oversize { .. })));
        assert!(matches!(
            check(&[0, 0, 0, 3, 0, 0, 0, 0], 1 << 20),
            Err(RecordError::TooShort { .. })
        ));
    }
}
