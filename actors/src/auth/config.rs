//! `[auth]` and `[[auth.user]]` as read from `config.toml`, and the checks that need
//! no hashing (each failure names the user's index, the key and the value, so the
//! config reader can point at the line).

use serde::{Deserialize, Serialize};

use super::glob::{FeatureGlob, TopicGlob};

fn login_timeout() -> u64 {
    5000
}

fn login_delay() -> u64 {
    1000
}

fn login_delay_max() -> u64 {
    30_000
}

/// `[auth]`: users of the broker port (and, later, the gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// A broker-port peer that has not logged in by then is closed.
    #[serde(default = "login_timeout")]
    pub login_timeout_ms: u64,
    /// No login needed: every peer may do everything (and non-loopback binds are
    /// allowed, with a warning at each start).
    #[serde(default)]
    pub allow_anonymous: bool,
    /// The delay before the answer to the first bad login from an address; it doubles
    /// with each further failure. Meant for tests; the default suits production.
    #[serde(default = "login_delay")]
    pub login_delay_ms: u64,
    /// The most a bad login's answer is delayed.
    #[serde(default = "login_delay_max")]
    pub login_delay_max_ms: u64,
    #[serde(default, rename = "user", skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            login_timeout_ms: login_timeout(),
            allow_anonymous: false,
            login_delay_ms: login_delay(),
            login_delay_max_ms: login_delay_max(),
            users: Vec::new(),
        }
    }
}

/// One `[[auth.user]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// argon2id PHC string (`switchyard passwd` prints one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// argon2id PHC string of a token, for `auth login` with `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    /// A file holding `password_hash` (a container secret, say); the config reader
    /// fills `password_hash` from it, so the file may not be given with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash_file: Option<std::path::PathBuf>,
    /// A file holding `token_hash`, as `password_hash_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub subscribe: Vec<String>,
    #[serde(default)]
    pub call: Vec<String>,
    /// Feature globs of the services (`svc:<name>`) the user may register.
    #[serde(default)]
    pub serve: Vec<String>,
    #[serde(default)]
    pub admin: bool,
}

/// A config the auth model cannot use: `[[auth.user]]` number `user` (0-based; `None`
/// for a key of `[auth]` itself), the key, the offending value and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthConfigError {
    pub user: Option<usize>,
    pub key: &'static str,
    pub value: String,
    pub message: String,
}

/// A PHC string shortened for an error message: enough to recognise it, not the hash.
pub(super) fn shown(hash: &str) -> String {
    match hash.char_indices().nth(32) {
        Some((i, _)) => format!("{}…", &hash[..i]),
        None => hash.to_string(),
    }
}

/// Parses `hash` as an argon2id PHC string with usable parameters.
pub(super) fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = argon2::PasswordHash::new(hash)
        .map_err(|e| format!("not a PHC hash string ({e}); `switchyard passwd` prints one"))?;
    if parsed.algorithm != argon2::Algorithm::Argon2id.ident() {
        return Err(format!(
            "expected an argon2id hash, got algorithm `{}`",
            parsed.algorithm
        ));
    }
    argon2::Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("the hash has no salt or no output".into());
    }
    Ok(())
}

impl AuthConfig {
    /// Everything but the hashing: names, hashes, patterns.
    pub fn validate(&self) -> Result<(), AuthConfigError> {
        if self.login_timeout_ms == 0 {
            return Err(AuthConfigError {
                user: None,
                key: "login_timeout_ms",
                value: "0".into(),
                message: "expected at least 1 ms".into(),
            });
        }
        if self.login_delay_max_ms < self.login_delay_ms {
            return Err(AuthConfigError {
                user: None,
                key: "login_delay_max_ms",
                value: self.login_delay_max_ms.to_string(),
                message: format!(
                    "expected at least auth.login_delay_ms ({})",
                    self.login_delay_ms
                ),
            });
        }
        for (i, u) in self.users.iter().enumerate() {
            let err = |key, value: &str, message: String| AuthConfigError {
                user: Some(i),
                key,
                value: value.to_string(),
                message,
            };
            if u.name.is_empty() || u.name.contains(|c: char| c.is_whitespace() || c == ':') {
                return Err(err(
                    "name",
                    &u.name,
                    "expected a non-empty name without whitespace or `:`".into(),
                ));
            }
            if let Some(j) = self.users[..i].iter().position(|o| o.name == u.name) {
                return Err(err(
                    "name",
                    &u.name,
                    format!(
                        "user `{}` is defined twice (also [[auth.user]] number {})",
                        u.name,
                        j + 1
                    ),
                ));
            }
            if u.password_hash.is_none() && u.token_hash.is_none() {
                return Err(err(
                    "name",
                    &u.name,
                    format!(
                        "user `{}` has neither password_hash nor token_hash, so it could never log in",
                        u.name
                    ),
                ));
            }
            for (key, hash) in [
                ("password_hash", &u.password_hash),
                ("token_hash", &u.token_hash),
            ] {
                if let Some(h) = hash {
                    check_hash(h).map_err(|m| err(key, &shown(h), m))?;
                }
            }
            for (key, globs) in [("publish", &u.publish), ("subscribe", &u.subscribe)] {
                for g in globs {
                    TopicGlob::parse(g).map_err(|e| err(key, g, e.0))?;
                }
            }
            for (key, globs) in [("call", &u.call), ("serve", &u.serve)] {
                for g in globs {
                    FeatureGlob::parse(g).map_err(|e| err(key, g, e.0))?;
                }
            }
        }
        Ok(())
    }
}
