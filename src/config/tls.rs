//! `[tls]`: the certificate, key and optional client CA of the broker port and the
//! gateway, and the rules tying it to `broker.tls` and `gateway.tls`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use switchyard_actors::tls::TlsFiles;

use super::error::{at_key, ConfigError};
use super::Config;

/// `[tls]`. Relative paths are taken from the broker's working directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the server certificate, then its intermediates. Re-read on SIGHUP.
    pub cert: PathBuf,
    /// PEM: the server's private key. Re-read on SIGHUP.
    pub key: PathBuf,
    /// PEM: the CAs client certificates must chain to; set, every TLS port requires a
    /// client certificate (mutual TLS). Re-read on SIGHUP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

impl TlsConfig {
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
            client_ca: self.client_ca.clone(),
        }
    }
}

impl Config {
    /// Whether any front end speaks TLS.
    pub fn tls_on(&self) -> bool {
        self.broker.tls || self.gateway.as_ref().is_some_and(|g| g.tls)
    }

    /// The files to load, when a front end speaks TLS.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        self.tls
            .as_ref()
            .filter(|_| self.tls_on())
            .map(TlsConfig::files)
    }

    /// `tls = true` needs a `[tls]` section (the files themselves are read at start-up).
    pub(super) fn validate_tls(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        if self.tls.is_some() {
            return Ok(());
        }
        let missing = |section: &str| {
            at_key(
                text,
                file,
                section,
                "tls",
                format!("{section}.tls = true needs a [tls] section with `cert` and `key` (PEM files); `switchyard dev-certs DIR` makes a set to try"),
            )
        };
        if self.broker.tls {
            return Err(missing("broker"));
        }
        if self.gateway.as_ref().is_some_and(|g| g.tls) {
            return Err(missing("gateway"));
        }
        Ok(())
    }
}
