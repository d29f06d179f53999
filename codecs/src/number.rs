//! Canonical decimal numbers.
//!
//! Go's `fmt.Fscan` also reads `+2`, `0x2`, `010` (octal 8) and `1_0`; switchyard reads
//! and writes only plain decimal digits, so one number has exactly one spelling.

/// Why a token is not a canonical unsigned decimal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// The token is empty.
    Empty,
    /// A byte other than `0`-`9` (this covers signs, `0x` and `_`).
    NotDecimal,
    /// A leading zero, which Go would read as octal.
    LeadingZero,
    /// Larger than the type holds.
    Overflow,
}

impl NumberError {
    /// Short lowercase text for log lines and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberError::Empty => "empty",
            NumberError::NotDecimal => "not a decimal number",
            NumberError::LeadingZero => "leading zero",
            NumberError::Overflow => "too large",
        }
    }
}

/// Parses `tok` as canonical unsigned decimal: digits only, no sign, no leading zero
/// unless the number is `0`.
pub fn parse_u64(tok: &[u8]) -> Result<u64, NumberError> {
    match tok {
        [] => Err(NumberError::Empty),
        [b'0'] => Ok(0),
        [b'0', ..] if tok.iter().all(u8::is_ascii_digit) => Err(NumberError::LeadingZero),
        _ => {
            let mut n: u64 = 0;
            for &b in tok {
                if !b.is_ascii_digit() {
                    return Err(NumberError::NotDecimal);
                }
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(b - b'0')))
                    .ok_or(NumberError::Overflow)?;
            }
            Ok(n)
        }
    }
}

/// Parses a canonical decimal that must fit a `usize`.
pub fn parse_usize(tok: &[u8]) -> Result<usize, NumberError> {
    parse_u64(tok).and_then(|n| usize::try_from(n).map_err(|_| NumberError::Overflow))
}

/// Appends `n` in canonical decimal.
pub fn write_u64(dst: &mut bytes::BytesMut, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_only() {
        assert_eq!(parse_u64(b"0"), Ok(0));
        assert_eq!(parse_u64(b"42"), Ok(42));
        assert_eq!(parse_u64(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_u64(b"18446744073709551616"),
            Err(NumberError::Overflow)
        );
        assert_eq!(parse_u64(b""), Err(NumberError::Empty));
        assert_eq!(parse_u64(b"010"), Err(NumberError::LeadingZero));
        assert_eq!(parse_u64(b"00"), Err(NumberError::LeadingZero));
        for odd in [&b"+2"[..], b"-2", b"0x2", b"1_0", b"2 ", b"x"] {
            assert_eq!(parse_u64(odd), Err(NumberError::NotDecimal), "{odd:?}");
        }
    }

    #[test]
    fn write_round_trips() {
        for n in [0, 1, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut b = bytes::BytesMut::new();
            write_u64(&mut b, n);
            assert_eq!(&b[..], n.to_string().as_bytes());
            assert_eq!(parse_u64(&b), Ok(n));
        }
    }
}
