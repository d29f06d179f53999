//! [`Cidr`]: a peer network (`10.0.0.0/8`, `fd00::/8`, or one address), for ports that
//! have no login and admit peers by address (`maze.allow`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An address and a prefix length; the bits past the prefix are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    net: IpAddr,
    len: u8,
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn mask(len: u8, width: u8) -> u128 {
    let full = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    full & !full.checked_shr(u32::from(len)).unwrap_or(0)
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 peer counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let (want, width) = bits(self.net);
        let (got, got_width) = bits(ip);
        width == got_width && got & mask(self.len, width) == want
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("expected a network like 10.0.0.0/8 or an address, got `{s}`"))?;
        let (value, width) = bits(net);
        let len = match len {
            None => width,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= width)
                .ok_or_else(|| format!("prefix length of `{s}` must be 0 to {width}"))?,
        };
        if value & !mask(len, width) & mask(width, width) != 0 {
            return Err(format!(
                "`{s}` has bits set past its /{len} prefix; write the network address"
            ));
        }
        Ok(Cidr { net, len })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(s: String) -> Result<Cidr, String> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn membership() {
        assert!(c("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!c("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(c("192.168.1.7").contains(ip("192.168.1.7")));
        assert!(!c("192.168.1.7").contains(ip("192.168.1.8")));
        assert!(c("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!c("0.0.0.0/0").contains(ip("::1")));
        assert!(c("fd00::/8").contains(ip("fd12::1")));
        assert!(c("::1").contains(ip("::1")));
        assert!(c("::/0").contains(ip("::2")));
        assert!(c("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn bad_networks_are_refused() {
        for s in [
            "10.0.0.0/33",
            "10.0.0.1/8",
            "nonsense",
            "10.0.0.0/x",
            "::/129",
        ] {
            assert!(s.parse::<Cidr>().is_err(), "{s}");
        }
        assert_eq!(c("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }
}
