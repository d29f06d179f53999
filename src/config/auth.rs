//! `[auth]` in the config file, and the secure-by-default rule: a port bound off
//! loopback needs users (or an explicit `auth.allow_anonymous`), and the maze ports,
//! which have no login, need `maze.allow`.

use std::net::SocketAddr;

use switchyard_actors::auth::Auth;
use tracing::warn;

use super::drivers::at_entry;
use super::error::at_key;
use super::{Config, ConfigError};

/// A PHC hash is about 100 bytes; a file past this is not one (`/dev/zero` is not read
/// for ever).
const MAX_HASH_FILE_BYTES: u64 = 4096;

/// The file's text, trimmed.
fn read_hash_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_HASH_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_HASH_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "longer than {MAX_HASH_FILE_BYTES} bytes"
        )));
    }
    Ok(text.trim().to_string())
}

impl Config {
    /// Fills each user's `password_hash` / `token_hash` from its `*_file`: secrets
    /// mounted into a container stay out of the config file.
    pub(super) fn read_hash_files(&mut self, text: &str, file: &str) -> Result<(), ConfigError> {
        let Some(a) = &mut self.auth else {
            return Ok(());
        };
        for (i, u) in a.users.iter_mut().enumerate() {
            for (key, path, hash) in [
                (
                    "password_hash_file",
                    &u.password_hash_file,
                    &mut u.password_hash,
                ),
                ("token_hash_file", &u.token_hash_file, &mut u.token_hash),
            ] {
                let Some(path) = path else { continue };
                let err = |m: String| at_entry(text, file, "auth.user", i, key, m);
                if hash.is_some() {
                    let inline = key.trim_end_matches("_file");
                    return Err(err(format!(
                        "{key} and {inline} are both set for user `{}`: keep one",
                        u.name
                    )));
                }
                let read = read_hash_file(path).map_err(|e| {
                    err(format!(
                        "cannot read `{}`: {e} (it should hold the hash `switchyard passwd` prints)",
                        path.display()
                    ))
                })?;
                *hash = Some(read);
            }
        }
        Ok(())
    }

    pub(super) fn validate_auth(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        if let Some(a) = &self.auth {
            a.validate().map_err(|e| {
                let message = match e.value.is_empty() {
                    true => e.message.clone(),
                    false => format!("{} (got `{}`)", e.message, e.value),
                };
                match e.user {
                    Some(i) => at_entry(text, file, "auth.user", i, e.key, message),
                    None => at_key(text, file, "auth", e.key, message),
                }
            })?;
            if a.users.is_empty() && !a.allow_anonymous {
                return Err(at_key(
                    text,
                    file,
                    "auth",
                    "user",
                    "[auth] has no [[auth.user]], so nobody could log in: add users (`switchyard passwd` makes their hashes) or set auth.allow_anonymous = true".into(),
                ));
            }
        }
        self.validate_binds(text, file)
    }

    /// Every port bound off loopback is refused unless it is protected.
    fn validate_binds(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let anonymous = self.auth.as_ref().is_some_and(|a| a.allow_anonymous);
        let secured = self.auth.is_some() || anonymous;
        let open = |a: &SocketAddr| !a.ip().is_loopback();
        let mut logged_in = vec![("broker", "bind", self.broker.bind)];
        if let Some(g) = &self.gateway {
            logged_in.extend(g.http_bind.map(|a| ("gateway", "http_bind", a)));
            logged_in.extend(g.grpc_bind.map(|a| ("gateway", "grpc_bind", a)));
        }
        if self.gateway.as_ref().is_some_and(|g| g.token.is_some()) {
            return Err(at_key(text, file, "gateway", "token", "gateway.token is gone: the gateway checks the [auth] users, like the broker port. Give the token's holder an [[auth.user]] with token_hash = the output of `switchyard passwd` (fed the token) and send `Authorization: Bearer <token>`; or use `Authorization: Basic` with a user's password".into()));
        }
        for (section, key, addr) in logged_in {
            if open(&addr) && !secured {
                return Err(at_key(text, file, section, key, format!(
                    "{section}.{key} = {addr} is not a loopback address and [auth] is absent, so anyone who can reach it could use the broker: add an [auth] section with [[auth.user]] entries (README, \"Security\"), or bind to 127.0.0.1, or set auth.allow_anonymous = true to accept anyone"
                )));
            }
        }
        if let Some(m) = &self.maze {
            for (key, addr) in [("event_bind", m.event_bind), ("client_bind", m.client_bind)] {
                if open(&addr) && m.allow.is_empty() && !anonymous {
                    return Err(at_key(text, file, "maze", key, format!(
                        "maze.{key} = {addr} is not a loopback address and the maze protocol has no login: set maze.allow = [\"10.0.0.0/8\", ...] to the networks its peers come from, or bind to 127.0.0.1, or set auth.allow_anonymous = true to accept anyone"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The compiled users for the broker port (one argon2 hash for the dummy: call it
    /// once, at start-up); warns when `auth.allow_anonymous` leaves the broker open.
    pub fn auth_settings(&self) -> Result<Option<Auth>, String> {
        let Some(a) = &self.auth else { return Ok(None) };
        if a.allow_anonymous {
            let open: Vec<String> = self
                .anonymous_open_binds()
                .iter()
                .map(|(k, a)| format!("{k}={a}"))
                .collect();
            warn!(open_binds = %open.join(" "), "auth.allow_anonymous = true: no login is needed, every peer may do everything");
        }
        Auth::from_config(a).map(Some).map_err(|e| e.to_string())
    }

    /// Ports off loopback that accept anyone (`auth.allow_anonymous`): warned at start.
    pub fn anonymous_open_binds(&self) -> Vec<(String, SocketAddr)> {
        if !self.auth.as_ref().is_some_and(|a| a.allow_anonymous) {
            return Vec::new();
        }
        let mut all = vec![("broker.bind".to_string(), self.broker.bind)];
        if let Some(g) = &self.gateway {
            all.extend(g.http_bind.map(|a| ("gateway.http_bind".to_string(), a)));
            all.extend(g.grpc_bind.map(|a| ("gateway.grpc_bind".to_string(), a)));
        }
        if let Some(m) = self.maze.as_ref().filter(|m| m.allow.is_empty()) {
            all.push(("maze.event_bind".into(), m.event_bind));
            all.push(("maze.client_bind".into(), m.client_bind));
        }
        all.retain(|(_, a)| !a.ip().is_loopback());
        all
    }
}
