//! Where a client connects (`--broker`, a host name or an address), and the blocking
//! connection every client command speaks envelopes on.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use bytes::BytesMut;
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio_util::codec::Decoder;

use super::tls::{self, Connector, TlsOptions};
use super::ClientError;
use crate::login::Login;

/// A broker address as the user wrote it: `host:port`, where host is a name
/// (`localhost`), an IPv4 address or a bracketed IPv6 address (`[::1]:7400`). Names are
/// resolved at every connect, so a reconnect finds a broker that moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    host: String,
    port: u16,
}

impl BrokerAddr {
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host when it is a name, not an address: what a TLS certificate is checked
    /// against by default.
    pub fn dns_name(&self) -> Option<&str> {
        self.host.parse::<IpAddr>().is_err().then_some(&*self.host)
    }

    /// Every address the host has, in the resolver's order.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, ClientError> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|source| ClientError::Connect {
                addr: self.to_string(),
                source,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(ClientError::Connect {
                addr: self.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            });
        }
        Ok(addrs)
    }

    /// A TCP connection to the first of its addresses that accepts one.
    pub fn connect_tcp(&self) -> Result<(std::net::TcpStream, SocketAddr), ClientError> {
        let mut last = None;
        for a in self.resolve()? {
            match std::net::TcpStream::connect(a) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok((s, a));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(ClientError::Connect {
            addr: self.to_string(),
            source: last.unwrap_or_else(|| std::io::Error::other("no address")),
        })
    }
}

impl std::str::FromStr for BrokerAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<BrokerAddr, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(a.into());
        }
        let bad =
            || format!("`{s}`: expected HOST:PORT (localhost:7400, 10.0.0.5:7400, [::1]:7400)");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse::<u16>().map_err(|_| bad())?;
        if host.is_empty() || host.contains(':') || host.contains('[') {
            return Err(bad());
        }
        Ok(BrokerAddr {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl From<SocketAddr> for BrokerAddr {
    fn from(a: SocketAddr) -> BrokerAddr {
        BrokerAddr {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

/// `--broker` and the TLS flags, as every client command takes them. Global, so that
/// `switchyard topics create NAME --broker B` reads them after the subcommand too.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnArgs {
    /// The broker port, HOST:PORT [default: broker.bind of the config]
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub broker: Option<BrokerAddr>,
    #[command(flatten)]
    pub tls: TlsOptions,
}

/// Where a client connects, and how.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: BrokerAddr,
    pub connector: Connector,
    /// Logged in with right after connecting, when set.
    pub login: Option<Login>,
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target {
            addr: addr.into(),
            connector: Connector::default(),
            login: None,
        }
    }
}

impl From<BrokerAddr> for Target {
    fn from(addr: BrokerAddr) -> Target {
        Target {
            addr,
            connector: Connector::default(),
            login: None,
        }
    }
}

/// A blocking connection to the broker port.
#[derive(Debug)]
pub struct Client {
    s: tls::Stream,
    codec: FrameCodec,
    buf: BytesMut,
    /// The rpcID of this connection's last call.
    rpc_ids: u64,
}

impl Client {
    /// Connects (over TLS when the target's connector says so), and logs in when the
    /// target has a login.
    pub fn connect(to: impl Into<Target>) -> Result<Client, ClientError> {
        let to = to.into();
        let mut s = to.connector.connect(&to.addr)?;
        if let Some(l) = &to.login {
            crate::login::login(&mut s, l).map_err(ClientError::Login)?;
        }
        Ok(Client {
            s,
            // The broker's answers may be large: a fetch of `topics.max_fetch_bytes`
            // (up to 64 MiB) as JSON is larger still.
            codec: FrameCodec::detect(Limits {
                max_frame_bytes: 256 << 20,
                ..Limits::default()
            }),
            buf: BytesMut::new(),
            rpc_ids: 0,
        })
    }

    /// One RPC call from this connection (its feature is `client:<id>`): `feature` is
    /// `driver:<name>`, `svc:<name>`, `broker` or `client:<id>`; `timeout` a Go
    /// duration (`2s`). The result payload, or the return's `error` as
    /// [`ClientError::Broker`]. Frames that are not its return are skipped.
    pub fn call(
        &mut self,
        feature: &str,
        method: &str,
        params: &[u8],
        timeout: Option<&str>,
    ) -> Result<bytes::Bytes, ClientError> {
        self.rpc_ids += 1;
        let id = self.rpc_ids.to_string();
        let mut env = Envelope::new("rpc", "call")
            .with_label("rpcID", id.clone())
            .with_label("feature", feature.to_string())
            .with_label("method", method.to_string())
            .with_payload(bytes::Bytes::copy_from_slice(params));
        if let Some(t) = timeout {
            env = env.with_label("timeout", t.to_string());
        }
        self.send(&env)?;
        loop {
            let ret = self.recv()?;
            if !ret.is("rpc", "return") || ret.labels.get_str("rpcID") != Some(&id) {
                continue;
            }
            return match ret.labels.get_str("error") {
                Some(e) => Err(ClientError::Broker(e.to_string())),
                None => Ok(ret.payload),
            };
        }
    }

    pub fn send(&mut self, e: &Envelope) -> Result<(), ClientError> {
        self.send_all(std::slice::from_ref(e))
    }

    /// Sends envelopes in one write.
    pub fn send_all(&mut self, es: &[Envelope]) -> Result<(), ClientError> {
        let mut b = BytesMut::with_capacity(es.iter().map(Envelope::encoded_len).sum());
        for e in es {
            e.encode(&mut b)
                .map_err(|e| ClientError::Frame(e.to_string()))?;
        }
        self.s.write_all(&b)?;
        self.s.flush()?;
        Ok(())
    }

    /// The next envelope; a `topic error` becomes [`ClientError::Broker`].
    pub fn recv(&mut self) -> Result<Envelope, ClientError> {
        loop {
            match self
                .codec
                .decode(&mut self.buf)
                .map_err(|e| ClientError::Frame(e.to_string()))?
            {
                Some(Frame::Envelope(e)) if e.is("topic", "error") => {
                    return Err(ClientError::Broker(
                        e.labels.get_str("error").unwrap_or("?").to_string(),
                    ))
                }
                Some(Frame::Envelope(e)) => return Ok(e),
                Some(Frame::Oversize(o)) => {
                    return Err(ClientError::Frame(format!(
                        "the broker sent a frame of {} bytes, over the client's limit of {}",
                        o.size, o.max
                    )))
                }
                Some(Frame::Maze(_)) => continue,
                None => {}
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A label's text, empty when absent.
pub fn label(e: &Envelope, name: &str) -> String {
    e.labels.get_str(name).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        let a: BrokerAddr = "localhost:7400".parse().unwrap();
        assert_eq!((a.host(), a.dns_name()), ("localhost", Some("localhost")));
        assert_eq!(a.to_string(), "localhost:7400");
        let v6: BrokerAddr = "[::1]:7400".parse().unwrap();
        assert_eq!((v6.host(), v6.dns_name()), ("::1", None));
        assert_eq!(v6.to_string(), "[::1]:7400");
        let v4: BrokerAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(v4.dns_name(), None);
        for bad in [
            "localhost",
            "localhost:",
            "localhost:99999",
            ":7400",
            "::1:7400",
        ] {
            assert!(bad.parse::<BrokerAddr>().is_err(), "{bad}");
        }
        assert!("localhost:7400"
            .parse::<BrokerAddr>()
            .unwrap()
            .resolve()
            .unwrap()
            .iter()
            .all(|a| a.ip().is_loopback()));
    }
}
