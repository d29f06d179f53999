//! TLS for the command-line clients and `switchyard bench`: `--tls`, `--ca`,
//! `--cert`/`--cert-key`, `--server-name`. Plain commands use rustls's blocking
//! `StreamOwned`; the bench, which reads and writes one connection from two threads,
//! splits a tokio-rustls stream and bridges each half back to blocking I/O.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tokio_util::io::SyncIoBridge;

use super::{BrokerAddr, ClientError};

/// How a client reaches a TLS broker port.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsOptions {
    /// Speak TLS to the broker port (it has `broker.tls = true`); needs --ca
    #[arg(long, global = true)]
    pub tls: bool,
    /// Trust the CA in this PEM file for the broker's certificate (no system roots
    /// are used)
    #[arg(long, value_name = "FILE", requires = "tls", global = true)]
    pub ca: Option<PathBuf>,
    /// Present this PEM certificate chain (mutual TLS, `tls.client_ca` set)
    #[arg(long, value_name = "FILE", requires_all = ["tls", "cert_key"], global = true)]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM). Not `--key`: `pub --key` is a record's key
    #[arg(long, value_name = "FILE", requires = "cert", global = true)]
    pub cert_key: Option<PathBuf>,
    /// The name the broker's certificate must carry [default: the --broker host name
    /// or IP address]
    #[arg(long, value_name = "NAME", requires = "tls", global = true)]
    pub server_name: Option<String>,
}

/// Opens connections to the broker, plain or TLS as the options say.
#[derive(Debug, Clone, Default)]
pub struct Connector {
    tls: Option<(Arc<ClientConfig>, Option<String>)>,
    /// The `--broker` host name, the certificate's name when `--server-name` is not given.
    host: Option<String>,
}

/// A blocking connection to the broker port.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

fn tls_error(what: impl std::fmt::Display) -> ClientError {
    ClientError::Tls(what.to_string())
}

impl Connector {
    pub fn new(o: &TlsOptions) -> Result<Connector, ClientError> {
        if !o.tls {
            return Ok(Connector::default());
        }
        let ca = o.ca.as_ref().ok_or_else(|| {
            tls_error("--tls needs --ca FILE: the CA that signed the broker's certificate (no system roots are used)")
        })?;
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| tls_error(format!("--ca {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(tls_error(format!(
                "--ca {}: no certificate in it",
                ca.display()
            )));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| tls_error(format!("--ca {}: {e}", ca.display())))?;
        }
        let b = ClientConfig::builder_with_provider(switchyard_actors::tls::provider())
            .with_protocol_versions(switchyard_actors::tls::VERSIONS)
            .map_err(tls_error)?
            .with_root_certificates(roots);
        let config = match (&o.cert, &o.cert_key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| tls_error(format!("--cert {}: {e}", cert.display())))?;
                let k = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| tls_error(format!("--cert-key {}: {e}", key.display())))?;
                b.with_client_auth_cert(chain, k)
                    .map_err(|e| tls_error(format!("--cert/--cert-key: {e}")))?
            }
            _ => b.with_no_client_auth(),
        };
        Ok(Connector {
            tls: Some((Arc::new(config), o.server_name.clone())),
            host: None,
        })
    }

    /// Checks the broker's certificate against `broker`'s host name (when it is a name
    /// and `--server-name` was not given), as a browser would.
    pub fn for_broker(mut self, broker: &BrokerAddr) -> Connector {
        self.host = broker.dns_name().map(str::to_string);
        self
    }

    fn name(
        &self,
        addr: SocketAddr,
        given: &Option<String>,
    ) -> Result<ServerName<'static>, ClientError> {
        match given.as_ref().or(self.host.as_ref()) {
            Some(n) => ServerName::try_from(n.clone())
                .map_err(|e| tls_error(format!("--server-name {n}: {e}"))),
            None => Ok(ServerName::IpAddress(addr.ip().into())),
        }
    }

    /// A blocking connection to the first of `broker`'s addresses that accepts one;
    /// over TLS the handshake is done before it returns.
    pub fn connect(&self, broker: &BrokerAddr) -> Result<Stream, ClientError> {
        let (s, addr) = broker.connect_tcp()?;
        let Some((config, name)) = &self.tls else {
            return Ok(Stream::Plain(s));
        };
        let conn =
            ClientConnection::new(config.clone(), self.name(addr, name)?).map_err(tls_error)?;
        let mut tls = StreamOwned::new(conn, s);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| tls_error(format!("handshake with {addr}: {e}")))?;
        }
        Ok(Stream::Tls(Box::new(tls)))
    }

    /// A connection as a reader and a writer that two threads can use at once.
    pub fn connect_split(&self, addr: SocketAddr) -> Result<(Reader, Writer), ClientError> {
        let Some((config, name)) = &self.tls else {
            let s = TcpStream::connect(addr).map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
            let _ = s.set_nodelay(true);
            let r = s.try_clone()?;
            return Ok((Box::new(r), Box::new(s)));
        };
        let rt = runtime()?;
        let name = self.name(addr, name)?;
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let tls = rt.block_on(async {
            let s = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: addr.to_string(),
                    source,
                })?;
            let _ = s.set_nodelay(true);
            connector
                .connect(name, s)
                .await
                .map_err(|e| tls_error(format!("handshake with {addr}: {e}")))
        })?;
        let (r, w) = tokio::io::split(tls);
        let h = rt.handle().clone();
        Ok((
            Box::new(SyncIoBridge::new_with_handle(r, h.clone())),
            Box::new(Flushing(SyncIoBridge::new_with_handle(w, h))),
        ))
    }
}

pub type Reader = Box<dyn Read + Send>;
pub type Writer = Box<dyn Write + Send>;

/// Every write is flushed: tokio-rustls may keep sealed records until a flush, and
/// the bench writes whole batches.
struct Flushing<W>(W);

impl<W: Write> Write for Flushing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf)?;
        self.0.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The runtime under the bench's TLS connections: one worker drives the sockets;
/// encryption runs on the bench threads that read and write.
fn runtime() -> Result<&'static tokio::runtime::Runtime, ClientError> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    Ok(RT.get_or_init(|| rt))
}
