//! Certificates made in the test (rcgen) and real TLS clients (tokio-rustls) for the
//! TLS tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A certificate authority with its key.
pub struct Ca {
    pub cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, as DER and as PEM.
pub struct Leaf {
    pub cert: CertificateDer<'static>,
    pub key: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key.clone()).into()
    }

    /// Writes `<name>.pem` and `<name>.key` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, &self.cert_pem).unwrap();
        std::fs::write(&k, &self.key_pem).unwrap();
        (c, k)
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(format!("{name}.pem"));
        std::fs::write(&p, self.pem()).unwrap();
        p
    }

    fn leaf(&self, mut p: CertificateParams, cn: &str, expired: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert: cert.der().clone(),
            key: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self, cn: &str) -> Leaf {
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.leaf(p, cn, false)
    }

    /// A client certificate naming `cn`.
    pub fn client(&self, cn: &str, expired: bool) -> Leaf {
        let mut p = CertificateParams::default();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf(p, cn, expired)
    }
}

/// Files for `[tls]`: a CA, a server certificate signed by it, in `dir`.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca_file: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("switchyard test CA");
        let (cert, key) = ca.server("server-one").write(dir.path(), "server");
        let ca_file = ca.write(dir.path(), "ca");
        Pki {
            dir,
            ca,
            cert,
            key,
            ca_file,
        }
    }

    /// The `[tls]` section; with `mutual`, client certificates must chain to the CA.
    pub fn section(&self, mutual: bool) -> String {
        let mut s = format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            self.cert.display(),
            self.key.display()
        );
        if mutual {
            s += &format!("client_ca = \"{}\"\n", self.ca_file.display());
        }
        s
    }
}

/// A client config trusting `ca`, presenting `client` when given.
pub fn client_config(ca: &Ca, client: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let b = ClientConfig::builder_with_provider(switchyard_actors::tls::provider())
        .with_protocol_versions(switchyard_actors::tls::VERSIONS)
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        Some(l) => b
            .with_client_auth_cert(vec![l.cert.clone()], l.key_der())
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

/// Connects and finishes the handshake (as the client sees it).
pub async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// Pings over `s`; an error if the broker does not answer `state alive`.
pub async fn try_ping(s: &mut TlsStream<TcpStream>) -> std::io::Result<()> {
    s.write_all(super::PING).await?;
    s.flush().await?;
    let mut buf = [0u8; super::ALIVE.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no answer in time"))??;
    if buf != super::ALIVE {
        return Err(std::io::Error::other(format!("answered {buf:?}")));
    }
    Ok(())
}

/// The subject CN-bearing DER of the certificate the server presented.
pub fn server_cert(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// Reads the next envelope from `s` (what is left over stays in `buf`).
pub async fn next_env<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut bytes::BytesMut,
) -> switchyard_codecs::Envelope {
    use tokio_util::codec::Decoder;
    let mut codec = switchyard_codecs::FrameCodec::detect(switchyard_codecs::Limits::default());
    loop {
        if let Some(switchyard_codecs::Frame::Envelope(e)) = codec.decode(buf).unwrap() {
            return e;
        }
        let mut chunk = vec![0u8; 64 << 10];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("an envelope in time")
            .unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}
