//! Who may use the broker: users, logins, permissions (README, "Security").
//!
//! This is the one user model every front end shares (the broker port now, the gateway
//! next); nothing here knows about sockets or actors.
//!
//! - [`cidr`]: peer networks, for ports without a login (`maze.allow`).
//! - [`config`]: `[auth]` and `[[auth.user]]` as written, and their checks.
//! - [`glob`]: topic globs (`*` one segment, `>` the rest) and feature globs.
//! - [`principal`]: [`Principal`], a user with compiled permissions; [`Decisions`], a
//!   connection's cache of them.
//! - [`users`]: [`Users`], password and token checks (argon2id, on the blocking pool).
//! - [`throttle`]: [`LoginThrottle`], the growing delay after bad logins per address.
//! - [`stats`]: [`AuthStats`], the counters behind `auth_failures_total` and
//!   `permission_denied_total`.

pub mod cidr;
pub mod config;
pub mod glob;
pub mod principal;
pub mod stats;
pub mod throttle;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

pub use cidr::Cidr;
pub use config::{AuthConfig, AuthConfigError, UserConfig};
pub use glob::{FeatureGlob, GlobError, TopicGlob};
pub use principal::{Decisions, Kind, PermissionsView, Principal, ANONYMOUS};
pub use stats::AuthStats;
pub use throttle::LoginThrottle;
pub use users::{hash_secret, verify_secret, Users};

/// Everything a front end needs to admit peers: the users, the login throttle and the
/// login deadline. Built once at start-up; shared by every connection.
#[derive(Debug, Clone)]
pub struct Auth {
    pub users: Arc<Users>,
    pub throttle: LoginThrottle,
    pub login_timeout: Duration,
    /// No login needed (`auth.allow_anonymous`).
    pub allow_anonymous: bool,
}

impl Auth {
    /// Compiles `config`; costs one argon2 hash (the dummy), so call it once.
    pub fn from_config(config: &AuthConfig) -> Result<Auth, AuthConfigError> {
        Ok(Auth {
            users: Arc::new(Users::from_config(config)?),
            throttle: LoginThrottle::new(
                Duration::from_millis(config.login_delay_ms),
                Duration::from_millis(config.login_delay_max_ms),
            ),
            login_timeout: Duration::from_millis(config.login_timeout_ms),
            allow_anonymous: config.allow_anonymous,
        })
    }

    /// Peers must log in before anything but a ping.
    pub fn login_required(&self) -> bool {
        !self.allow_anonymous
    }
}
