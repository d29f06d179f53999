//! What a broker-port connection learns from its TLS session: when the handshake is
//! over, the name the client certificate carries, and why a session failed.

use actix::prelude::*;
use tracing::debug;

use super::Connection;
use crate::tls::{incoming::log_failure, TlsFailure, TlsPort};

impl Connection {
    /// The name the verified client certificate carries (mutual TLS: its CN, else its
    /// first DNS or e-mail SAN), once the handshake is over; `None` without TLS,
    /// without `tls.client_ca`, or when the certificate names nobody.
    ///
    /// A connection whose identity is a configured `[[auth.user]]` is that user, and
    /// needs no login frame.
    pub fn tls_identity(&self) -> Option<&str> {
        self.tls_identity.as_deref()
    }

    pub(super) fn tls_established(&mut self, name: Option<String>) {
        match &name {
            Some(n) => debug!(identity = %n, "tls handshake done, client certificate verified"),
            None => debug!("tls handshake done"),
        }
        if let Some(n) = &name {
            self.login_by_certificate(n);
        }
        self.tls_identity = name;
        self.entry.set_detail(self.detail());
    }

    /// The tree detail: the protocol once known, then TLS and the identity, then the
    /// read buffer's size in force.
    pub(super) fn detail(&self) -> String {
        let proto = match self.codec.mode() {
            _ if !self.proto_known => None,
            switchyard_codecs::Mode::Maze => Some("maze"),
            _ => Some("dipper"),
        };
        let mut parts: Vec<String> = proto.map(str::to_string).into_iter().collect();
        if self.sock.is_tls() {
            parts.push("tls".into());
        }
        if let Some(n) = &self.tls_identity {
            parts.push(format!("identity={n}"));
        }
        parts.push(format!("read_buffer={}", self.read_size));
        parts.join(" ")
    }

    /// The session cannot go on: a failed handshake is logged with the peer and the
    /// reason (it was counted by the socket); the connection closes at once.
    pub(super) fn tls_failed(&mut self, f: &TlsFailure, ctx: &mut Context<Self>) {
        if f.handshake {
            log_failure(TlsPort::Broker, self.peer, f.reason, &f.detail);
        } else {
            debug!(error = %f, "tls session failed, closing");
        }
        self.sock.discard();
        ctx.stop();
    }
}
