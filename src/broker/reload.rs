//! SIGHUP: the config file is read again; drivers and rules change in place, and the
//! TLS certificates are re-read for the next handshakes (open connections keep
//! theirs). What fails to load leaves what runs as it is, and the log says why.

use switchyard_actors::drivers::{Reload, ReloadSummary};
use tracing::{info, warn};

use super::Broker;
use crate::config::Config;

impl Broker {
    /// Re-reads the config file (SIGHUP): drivers and rules change in place; a file
    /// that does not validate is rejected and the running set stays as it is.
    pub async fn reload(&mut self) -> Result<ReloadSummary, String> {
        let path = self
            .config_path
            .clone()
            .ok_or("no config file to reload from")?;
        match Config::load(Some(&path)) {
            Ok((config, _)) => self.reload_with(config).await,
            Err(e) => {
                warn!(error = %e, "config rejected, the running drivers and certificates stay as they are");
                Err(e.to_string())
            }
        }
    }

    /// Applies `config`'s `[tls]` files, `[drivers]`, `[[driver]]` and `[[rule]]`.
    pub async fn reload_with(&mut self, config: Config) -> Result<ReloadSummary, String> {
        let _ = self.reload_tls(&config);
        let mut rest = config.clone();
        rest.drivers = self.config.drivers.clone();
        rest.driver = self.config.driver.clone();
        rest.rule = self.config.rule.clone();
        rest.tls = self.config.tls.clone();
        let waiting = self.config.changed_keys(&rest);
        if !waiting.is_empty() {
            warn!(keys = %waiting.join(", "), "config changes outside [tls], [drivers], [[driver]] and [[rule]] take effect at the next start");
        }
        let host = self.host().ok_or("driver host not running")?;
        let summary = host
            .send(Reload(config.host_settings()))
            .await
            .map_err(|e| e.to_string())?;
        self.config.drivers = config.drivers;
        self.config.driver = config.driver;
        self.config.rule = config.rule;
        Ok(summary)
    }

    /// Re-reads the certificate, key and client CA named by `config`'s `[tls]` (or, if
    /// it has none, the ones in force). Ok(false): no front end speaks TLS. On an
    /// error the certificates in force stay.
    pub fn reload_tls(&mut self, config: &Config) -> Result<bool, String> {
        let Some(certs) = &self.tls else {
            return Ok(false);
        };
        let Some(tls) = config.tls.as_ref().or(self.config.tls.as_ref()) else {
            return Ok(false);
        };
        match certs.reload(&tls.files()) {
            Ok(()) => {
                info!(
                    cert = %tls.cert.display(),
                    mutual_tls = certs.mutual(),
                    "tls certificates reloaded; new connections use them"
                );
                self.config.tls = Some(tls.clone());
                Ok(true)
            }
            Err(e) => {
                warn!(error = %e, "tls reload failed, the certificates in force stay");
                Err(e.to_string())
            }
        }
    }
}
