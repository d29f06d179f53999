//! The name a verified client certificate carries: its subject's common name (CN), or
//! else its first DNS name, or else its first e-mail address (subjectAltName).
//!
//! Read with a small DER walker rather than a full X.509 parser: the certificate has
//! already been verified by webpki when this runs, and only three fields are wanted.
//! Every length is bounds-checked all the same; anything unexpected gives `None`.

/// The identity in the DER certificate `der`, if it names one.
pub fn of_certificate(der: &[u8]) -> Option<String> {
    let (cert, _) = expect(der, 0x30)?;
    let (mut tbs, _) = expect(cert, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = next(tbs)?.2; // version
    }
    for _ in 0..4 {
        tbs = next(tbs)?.2; // serial, signature algorithm, issuer, validity
    }
    let (subject, rest) = expect(tbs, 0x30)?;
    if let Some(cn) = common_name(subject) {
        return Some(cn);
    }
    let san = extension(rest, &[0x55, 0x1d, 0x11])?;
    let (mut names, _) = expect(san, 0x30)?;
    let (mut dns, mut email) = (None, None);
    while !names.is_empty() {
        let (tag, value, rest) = next(names)?;
        match tag {
            0x82 if dns.is_none() => dns = text(value),
            0x81 if email.is_none() => email = text(value),
            _ => {}
        }
        names = rest;
    }
    dns.or(email)
}

/// The first CN of a `Name`.
fn common_name(mut name: &[u8]) -> Option<String> {
    while !name.is_empty() {
        let (rdn, rest) = expect(name, 0x31)?;
        let mut attrs = rdn;
        while !attrs.is_empty() {
            let (atv, more) = expect(attrs, 0x30)?;
            let (oid, value) = expect(atv, 0x06)?;
            if oid == [0x55, 0x04, 0x03] {
                let (tag, v, _) = next(value)?;
                // UTF8String, PrintableString, IA5String.
                if matches!(tag, 0x0c | 0x13 | 0x16) {
                    return text(v);
                }
            }
            attrs = more;
        }
        name = rest;
    }
    None
}

/// The value of the extension `oid`, from what follows the subject in a TBS.
fn extension<'a>(mut tbs: &'a [u8], oid: &[u8]) -> Option<&'a [u8]> {
    while !tbs.is_empty() {
        let (tag, value, rest) = next(tbs)?;
        if tag == 0xa3 {
            let (mut exts, _) = expect(value, 0x30)?;
            while !exts.is_empty() {
                let (ext, more) = expect(exts, 0x30)?;
                let (id, mut body) = expect(ext, 0x06)?;
                if body.first() == Some(&0x01) {
                    body = next(body)?.2; // critical
                }
                if id == oid {
                    return Some(expect(body, 0x04)?.0);
                }
                exts = more;
            }
            return None;
        }
        tbs = rest;
    }
    None
}

/// Printable UTF-8 only: the name goes into logs and user lookups.
fn text(v: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(v).ok()?;
    (!s.is_empty() && !s.chars().any(char::is_control)).then(|| s.to_string())
}

/// The next element of `tag`: its contents and what follows it.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, value, rest) = next(input)?;
    (t == tag).then_some((value, rest))
}

/// The next DER element: tag, contents, rest.
fn next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, after) = input.split_first()?;
    let (&first, mut after) = after.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || after.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &after[..n] {
            len = (len << 8) | usize::from(b);
        }
        after = &after[n..];
        len
    };
    if after.len() < len {
        return None;
    }
    let (value, rest) = after.split_at(len);
    Some((tag, value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "switchyard");
        if let Some(cn) = cn {
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        p.subject_alt_names = sans;
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn common_name_first() {
        let der = cert(
            Some("ops"),
            vec![rcgen::SanType::DnsName("host.example".try_into().unwrap())],
        );
        assert_eq!(of_certificate(&der).as_deref(), Some("ops"));
    }

    #[test]
    fn then_dns_then_email() {
        let der = cert(
            None,
            vec![
                rcgen::SanType::Rfc822Name("a@example.com".try_into().unwrap()),
                rcgen::SanType::DnsName("svc.example".try_into().unwrap()),
            ],
        );
        assert_eq!(of_certificate(&der).as_deref(), Some("svc.example"));
        let der = cert(
            None,
            vec![rcgen::SanType::Rfc822Name(
                "a@example.com".try_into().unwrap(),
            )],
        );
        assert_eq!(of_certificate(&der).as_deref(), Some("a@example.com"));
        assert_eq!(of_certificate(&cert(None, vec![])), None);
    }

    #[test]
    fn garbage_is_no_name() {
        let der = cert(Some("ops"), vec![]);
        for cut in [0, 1, 2, 10, der.len() / 2] {
            assert_eq!(of_certificate(&der[..cut]), None);
        }
        assert_eq!(of_certificate(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
