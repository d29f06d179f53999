//! TLS for the broker port and the gateway (rustls with the `ring` provider, TLS 1.2
//! and 1.3 only).
//!
//! [`TlsCerts`] holds the server certificate and, for mutual TLS, the client-certificate
//! verifier, each in a slot that [`TlsCerts::reload`] swaps: every `ServerConfig` made
//! from it (broker port, HTTPS, gRPC) picks the new material for its next handshake,
//! and open connections keep theirs.
//!
//! - [`slots`]: the swappable certificate resolver and client verifier.
//! - [`session`]: the sans-IO server session a broker-port [`crate::socket::Socket`]
//!   drives from its own readiness loop.
//! - [`identity`]: the name a verified client certificate carries (CN, or a SAN).
//! - [`stats`]: handshake counters and failure reasons.
//! - [`incoming`]: TLS-accepted streams for tonic.

pub mod identity;
pub mod incoming;
pub mod session;
pub mod slots;
pub mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use session::TlsSession;
pub use slots::{CertSlot, VerifierSlot};
pub use stats::{FailReason, TlsFailure, TlsPort, TlsStats};

/// Where the certificate material is read from (`[tls]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: the CAs client certificates must chain to; set, a client certificate is
    /// required on every TLS port (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Certificate material that cannot be used, naming the `[tls]` key it came from. The
/// file's contents are never part of the message.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("tls.{key}: cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("tls.{key}: {path}: {what}")]
    Invalid {
        key: &'static str,
        path: String,
        what: String,
    },
}

/// The crypto provider every TLS endpoint uses: ring, whatever else is compiled in.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions offered: TLS 1.3 and 1.2, nothing older.
pub const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The server side's certificate and client verifier, swappable at run time.
#[derive(Debug)]
pub struct TlsCerts {
    certs: Arc<CertSlot>,
    verifier: Arc<VerifierSlot>,
    provider: Arc<CryptoProvider>,
}

impl TlsCerts {
    /// Reads and checks every file of `files`.
    pub fn load(files: &TlsFiles) -> Result<Arc<TlsCerts>, LoadError> {
        let provider = provider();
        let (key, verifier) = read_all(files, &provider)?;
        Ok(Arc::new(TlsCerts {
            certs: Arc::new(CertSlot::new(key)),
            verifier: Arc::new(VerifierSlot::new(verifier)),
            provider,
        }))
    }

    /// Re-reads `files`; on any error the certificates in force stay, and the error
    /// says why. New handshakes use the new material; open connections keep theirs.
    pub fn reload(&self, files: &TlsFiles) -> Result<(), LoadError> {
        let (key, verifier) = read_all(files, &self.provider)?;
        self.certs.set(key);
        self.verifier.set(verifier);
        Ok(())
    }

    /// Whether client certificates are required now.
    pub fn mutual(&self) -> bool {
        self.verifier.is_set()
    }

    /// A server config over the swappable slots, offering `alpn` (empty: none).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, rustls::Error> {
        let mut c = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(VERSIONS)?
            .with_client_cert_verifier(self.verifier.clone())
            .with_cert_resolver(self.certs.clone());
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(c))
    }
}

type Material = (
    Arc<CertifiedKey>,
    Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
);

fn read_all(files: &TlsFiles, provider: &Arc<CryptoProvider>) -> Result<Material, LoadError> {
    let chain = read_certs("cert", &files.cert)?;
    let key = read_key(&files.key)?;
    let certified =
        CertifiedKey::from_der(chain, key, provider).map_err(|e| LoadError::Invalid {
            key: "key",
            path: files.key.display().to_string(),
            what: format!("does not fit tls.cert: {e}"),
        })?;
    let verifier = match &files.client_ca {
        None => None,
        Some(path) => Some(client_verifier(path, provider)?),
    };
    Ok((Arc::new(certified), verifier))
}

fn read_bytes(key: &'static str, path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Read {
        key,
        path: path.display().to_string(),
        source,
    })
}

/// Every certificate in the PEM file `path` (at least one).
pub fn read_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let bytes = read_bytes(key, path)?;
    let invalid = |what: String| LoadError::Invalid {
        key,
        path: path.display().to_string(),
        what,
    };
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, LoadError> {
    let bytes = read_bytes("key", path)?;
    // The parser's error names the PEM problem only, never the key's bytes.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| LoadError::Invalid {
        key: "key",
        path: path.display().to_string(),
        what: format!("no usable private key: {e}"),
    })
}

fn client_verifier(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, LoadError> {
    let invalid = |what: String| LoadError::Invalid {
        key: "client_ca",
        path: path.display().to_string(),
        what,
    };
    let mut roots = RootCertStore::empty();
    for c in read_certs("client_ca", path)? {
        roots
            .add(c)
            .map_err(|e| invalid(format!("not a usable CA certificate: {e}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid(e.to_string()))
}
