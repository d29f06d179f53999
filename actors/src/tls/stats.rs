//! Handshake counters (`tls_handshakes_total{port}`,
//! `tls_handshake_failures_total{port,reason}`) and the reasons a handshake fails.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rustls::{AlertDescription, CertificateError};

/// The TLS front ends that count their handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPort {
    Broker,
    Grpc,
}

impl TlsPort {
    pub const ALL: [TlsPort; 2] = [TlsPort::Broker, TlsPort::Grpc];

    pub fn name(self) -> &'static str {
        match self {
            TlsPort::Broker => "broker",
            TlsPort::Grpc => "grpc",
        }
    }
}

/// Why a handshake failed, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The first byte was not a TLS handshake record: a plaintext client.
    Plaintext,
    /// Mutual TLS, and the client sent no certificate.
    NoClientCert,
    /// The client's certificate does not chain to `tls.client_ca`.
    UnknownIssuer,
    /// The client's certificate is expired (or not yet valid).
    Expired,
    /// Any other problem with the client's certificate.
    BadCertificate,
    /// The client gave up with an alert (it did not trust our certificate, mostly).
    PeerAlert,
    /// No protocol version or cipher suite in common (TLS 1.1 and older, mostly).
    Incompatible,
    /// The peer closed the connection before the handshake finished.
    Eof,
    /// Anything else: malformed records, unexpected messages.
    Protocol,
}

impl FailReason {
    pub const ALL: [FailReason; 9] = [
        FailReason::Plaintext,
        FailReason::NoClientCert,
        FailReason::UnknownIssuer,
        FailReason::Expired,
        FailReason::BadCertificate,
        FailReason::PeerAlert,
        FailReason::Incompatible,
        FailReason::Eof,
        FailReason::Protocol,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FailReason::Plaintext => "plaintext",
            FailReason::NoClientCert => "no_client_cert",
            FailReason::UnknownIssuer => "unknown_issuer",
            FailReason::Expired => "expired",
            FailReason::BadCertificate => "bad_certificate",
            FailReason::PeerAlert => "peer_alert",
            FailReason::Incompatible => "incompatible",
            FailReason::Eof => "eof",
            FailReason::Protocol => "protocol",
        }
    }

    /// The reason rustls's `e` stands for.
    pub fn of(e: &rustls::Error) -> FailReason {
        use rustls::Error as E;
        match e {
            E::NoCertificatesPresented => FailReason::NoClientCert,
            E::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => FailReason::UnknownIssuer,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => FailReason::Expired,
                _ => FailReason::BadCertificate,
            },
            E::AlertReceived(AlertDescription::ProtocolVersion)
            | E::AlertReceived(AlertDescription::HandshakeFailure) => FailReason::Incompatible,
            E::AlertReceived(_) => FailReason::PeerAlert,
            E::PeerIncompatible(_) => FailReason::Incompatible,
            _ => FailReason::Protocol,
        }
    }

    fn index(self) -> usize {
        FailReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(FailReason::ALL.len() - 1)
    }
}

/// A TLS session that cannot go on, carried inside the `io::Error` a read returns.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct TlsFailure {
    pub reason: FailReason,
    /// It happened before the handshake finished (and was counted as a failure).
    pub handshake: bool,
    pub detail: String,
}

impl TlsFailure {
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }

    /// The failure inside `e`, when it is one.
    pub fn of(e: &std::io::Error) -> Option<&TlsFailure> {
        e.get_ref()?.downcast_ref::<TlsFailure>()
    }
}

/// Handshakes done and failed, per port and reason.
#[derive(Debug, Default)]
pub struct TlsStats {
    done: [AtomicU64; 2],
    failed: [[AtomicU64; FailReason::ALL.len()]; 2],
}

impl TlsStats {
    pub fn handshake_done(&self, port: TlsPort) {
        self.done[port as usize].fetch_add(1, Relaxed);
    }

    pub fn handshake_failed(&self, port: TlsPort, why: FailReason) {
        self.failed[port as usize][why.index()].fetch_add(1, Relaxed);
    }

    pub fn handshakes(&self, port: TlsPort) -> u64 {
        self.done[port as usize].load(Relaxed)
    }

    pub fn failures(&self, port: TlsPort, why: FailReason) -> u64 {
        self.failed[port as usize][why.index()].load(Relaxed)
    }
}
