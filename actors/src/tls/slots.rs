//! The two swappable parts of every TLS server config: the certificate the server
//! presents ([`CertSlot`]) and the verifier of client certificates ([`VerifierSlot`]).
//! A reload replaces what they hold; a handshake reads them once, when it needs them,
//! so open connections are never touched.

use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The server certificate and key in force.
#[derive(Debug)]
pub struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl CertSlot {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        CertSlot(RwLock::new(key))
    }

    pub fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
    }

    pub fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

type Inner = Option<Arc<dyn ClientCertVerifier>>;

/// The client-certificate verifier in force; empty: no client certificate is asked for.
#[derive(Debug)]
pub struct VerifierSlot(RwLock<Inner>);

impl VerifierSlot {
    pub fn new(v: Inner) -> Self {
        VerifierSlot(RwLock::new(v))
    }

    pub fn set(&self, v: Inner) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = v;
    }

    pub fn is_set(&self) -> bool {
        self.get().is_some()
    }

    fn get(&self) -> Inner {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&dyn ClientCertVerifier) -> Result<T, rustls::Error>,
    ) -> Result<T, rustls::Error> {
        match self.get() {
            Some(v) => f(v.as_ref()),
            // Only reachable when a reload removed `client_ca` mid-handshake.
            None => Err(rustls::Error::General(
                "client certificates are no longer verified".into(),
            )),
        }
    }
}

impl ClientCertVerifier for VerifierSlot {
    fn offer_client_auth(&self) -> bool {
        self.is_set()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.is_set()
    }

    /// No hints: the slot cannot lend out a borrow of what a reload may replace, and
    /// an empty list is valid (any CA); clients here carry one certificate anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.with(|v| v.verify_client_cert(end_entity, intermediates, now))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.with(|v| v.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.with(|v| v.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        match self.get() {
            Some(v) => v.supported_verify_schemes(),
            None => super::provider()
                .signature_verification_algorithms
                .supported_schemes(),
        }
    }
}
