//! `bind` keys: `host:port`, where the host is an IP address or a name. A name is
//! resolved when the config is read (check-config, start-up, SIGHUP), so every check
//! after that, the loopback rule of "Security" among them, sees the address the port
//! will be bound to; a name that does not resolve is an error naming the key, the value
//! and the line.

use std::net::{SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Deserializer};

/// The address `text` binds: an IP literal as it is, a name resolved now, taking its
/// first IPv4 address, else its first address.
pub(super) fn resolve(text: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("expected host:port, got `{text}`"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!(
            "expected host:port with a port from 0 to 65535, got `{text}`"
        ));
    }
    let all: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{text}`: {e}"))?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| format!("cannot resolve `{text}`: no address"))
}

/// For `#[serde(deserialize_with)]` on a `SocketAddr` bind.
pub(super) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    resolve(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// For `#[serde(deserialize_with)]` on an optional bind (with `default`).
pub(super) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    required(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn binds_take_addresses_and_names() {
        assert_eq!(
            resolve("127.0.0.1:7400"),
            Ok("127.0.0.1:7400".parse().unwrap())
        );
        assert_eq!(resolve("[::1]:0"), Ok("[::1]:0".parse().unwrap()));
        let local = resolve("localhost:7400").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 7400, "{local}");
        assert!(resolve("localhost")
            .unwrap_err()
            .contains("expected host:port"));
        assert!(resolve("localhost:http")
            .unwrap_err()
            .contains("a port from 0"));
        let e = resolve("no-such-host.invalid:7400").unwrap_err();
        assert!(
            e.starts_with("cannot resolve `no-such-host.invalid:7400`: "),
            "{e}"
        );
    }

    #[test]
    fn every_bind_key_resolves_names_and_errors_name_key_value_and_line() {
        let c = Config::parse(
            "[broker]\nbind = \"localhost:7400\"\n[maze]\nevent_bind = \"localhost:0\"\n\
             client_bind = \"localhost:1\"\n[gateway]\nhttp_bind = \"localhost:2\"\n\
             grpc_bind = \"localhost:3\"\n",
            "c.toml",
        )
        .unwrap();
        assert!(
            c.broker.bind.ip().is_loopback(),
            "localhost is loopback: no [auth] needed"
        );
        let m = c.maze.unwrap();
        assert!(m.event_bind.ip().is_loopback() && m.client_bind.port() == 1);
        let g = c.gateway.unwrap();
        assert_eq!(g.http_bind.map(|a| a.port()), Some(2));
        assert_eq!(g.grpc_bind.map(|a| a.port()), Some(3));
        for (section, key) in [
            ("broker", "bind"),
            ("maze", "event_bind"),
            ("maze", "client_bind"),
            ("gateway", "http_bind"),
            ("gateway", "grpc_bind"),
        ] {
            let text = format!("# binds\n[{section}]\n{key} = \"no-such-host.invalid:7400\"\n");
            let e = Config::parse(&text, "c.toml").unwrap_err();
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!(
                    "c.toml:3:{}: key `{section}.{key}`: cannot resolve `no-such-host.invalid:7400`",
                    key.len() + 4
                )),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_name_that_resolves_off_loopback_needs_auth() {
        // `10.1` is not an IP literal to Rust but resolves (inet_aton's short form) to
        // 10.0.0.1: a name for a non-loopback address that needs no DNS.
        let e = Config::parse("[broker]\nbind = \"10.1:7400\"\n", "c.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("broker.bind"));
        assert!(
            e.message.starts_with(
                "broker.bind = 10.0.0.1:7400 is not a loopback address and [auth] is absent"
            ),
            "{e}"
        );
    }
}
