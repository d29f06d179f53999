//! Who calls the gateway: the `[auth]` users of the broker port, presented as HTTP
//! `Authorization: Basic` (user and password) or `Bearer <token>` (a `token_hash`
//! user), or the same value in gRPC `authorization` metadata.
//!
//! HTTP and gRPC clients send their credentials with every request, and an argon2id
//! check costs tens of milliseconds, so a verified credential is remembered for
//! [`CACHE_TTL`] under a salted BLAKE2b digest (never as itself). A bad credential is
//! answered after the same growing per-address delay as a bad broker-port login.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blake2::{Blake2b512, Digest};
use tracing::{info, warn};

use super::error::{ApiError, ErrorKind};
use crate::auth::{Auth, Principal};
use crate::stats::BrokerStats;

/// How long a verified credential is trusted without another argon2 check.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// Verified credentials remembered at once; past it the cache starts again.
const CACHE_ENTRIES: usize = 1024;

type Digest32 = [u8; 32];

/// Verified credentials by digest, with when they were verified.
type Cache = HashMap<Digest32, (Arc<Principal>, Instant)>;

/// The gateway's view of `[auth]`, shared by the HTTP and gRPC servers.
#[derive(Debug, Clone, Default)]
pub struct GatewayAuth {
    auth: Option<Auth>,
    stats: Arc<BrokerStats>,
    cache: Arc<Mutex<Cache>>,
    salt: Digest32,
}

impl GatewayAuth {
    /// `auth` as configured (`None`: no `[auth]`, everyone may do everything).
    pub fn new(auth: Option<Auth>, stats: Arc<BrokerStats>) -> Self {
        let mut salt = [0u8; 32];
        for chunk in salt.chunks_mut(8) {
            // RandomState is seeded from the OS: a per-process secret for the digests.
            let r = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            chunk.copy_from_slice(&r.to_le_bytes());
        }
        GatewayAuth {
            auth,
            stats,
            cache: Arc::default(),
            salt,
        }
    }

    /// Credentials are needed (`[auth]` present without `allow_anonymous`).
    pub fn required(&self) -> bool {
        self.auth.as_ref().is_some_and(Auth::login_required)
    }

    /// Who `authorization` (the header or metadata value) names, or, without it, the
    /// verified client certificate's `identity` (mutual TLS) when that is a user; or
    /// why not. `port` is `http` or `grpc`, for `auth_failures_total`.
    pub async fn check(
        &self,
        authorization: Option<&str>,
        identity: Option<&str>,
        peer: Option<IpAddr>,
        port: &'static str,
    ) -> Result<Arc<Principal>, ApiError> {
        let Some(auth) = &self.auth else {
            return Ok(Arc::new(Principal::anonymous()));
        };
        // A peer whose address is unknown still waits after a bad login: all of them
        // share one entry of the throttle.
        let peer = Some(peer.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)));
        let Some(value) = authorization.filter(|v| !v.trim().is_empty()) else {
            if let Some(p) = identity.and_then(|n| auth.users.named(n)) {
                return Ok(p);
            }
            if !auth.login_required() {
                return Ok(Arc::new(Principal::anonymous()));
            }
            self.stats.auth.failure(port, "missing");
            return Err(unauthenticated(
                "credentials required (Authorization: Basic or Bearer)",
            ));
        };
        let cred = match Credential::parse(value) {
            Some(c) => c,
            None => {
                self.stats.auth.failure(port, "malformed");
                return Err(unauthenticated(
                    "Authorization must be `Basic <base64 user:password>` or `Bearer <token>`",
                ));
            }
        };
        let key = self.digest(&cred);
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let users = auth.users.clone();
        let found = match &cred {
            Credential::Password { user, password } => {
                users
                    .verify_password_blocking(user.clone(), password.clone())
                    .await
            }
            Credential::Token(t) => users.verify_token_blocking(t.clone()).await,
        };
        match found {
            Some(p) => {
                if let Some(ip) = peer {
                    auth.throttle.success(ip);
                }
                info!(peer = peer.map(tracing::field::display), user = %p.name, port, "gateway login");
                self.remember(key, p.clone());
                Ok(p)
            }
            None => {
                self.stats.auth.failure(port, "bad_credentials");
                if let Some(ip) = peer {
                    let delay = auth.throttle.failure(ip);
                    warn!(peer = %ip, port, delay_ms = delay.as_millis() as u64, "gateway login refused");
                    tokio::time::sleep(delay).await;
                }
                Err(unauthenticated("bad credentials"))
            }
        }
    }

    fn digest(&self, c: &Credential) -> Digest32 {
        let mut h = Blake2b512::new();
        h.update(self.salt);
        match c {
            Credential::Password { user, password } => {
                h.update(b"p");
                h.update((user.len() as u64).to_le_bytes());
                h.update(user.as_bytes());
                h.update(password.as_bytes());
            }
            Credential::Token(t) => {
                h.update(b"t");
                h.update(t.as_bytes());
            }
        }
        let full = h.finalize();
        let mut out = [0u8; 32];
        out.copy_from_slice(&full[..32]);
        out
    }

    fn cached(&self, key: &Digest32) -> Option<Arc<Principal>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    fn remember(&self, key: Digest32, p: Arc<Principal>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (p, Instant::now()));
    }

    /// A permission check: refused as `op` on `resource`, counted in
    /// `permission_denied_total{op}`.
    pub fn need(&self, allowed: bool, op: &'static str, resource: &str) -> Result<(), ApiError> {
        if allowed {
            return Ok(());
        }
        self.stats.auth.denied(op);
        Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("permission denied: {op} {resource}"),
        ))
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Unauthenticated, message)
}

/// What an `Authorization` value carries.
#[derive(Debug, PartialEq, Eq)]
enum Credential {
    Password { user: String, password: String },
    Token(String),
}

impl Credential {
    fn parse(value: &str) -> Option<Credential> {
        let (scheme, rest) = value.trim().split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            return Some(Credential::Token(rest.to_string()));
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let text = String::from_utf8(super::base64::decode(rest)?).ok()?;
        let (user, password) = text.split_once(':')?;
        Some(Credential::Password {
            user: user.to_string(),
            password: password.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_basic_and_bearer() {
        assert_eq!(
            Credential::parse("Basic b3BzOnMzY3JldDpwdw=="),
            Some(Credential::Password {
                user: "ops".into(),
                password: "s3cret:pw".into()
            })
        );
        assert_eq!(
            Credential::parse("bearer  tok "),
            Some(Credential::Token("tok".into()))
        );
        for bad in [
            "Basic",
            "Basic !!!!",
            "Basic b3Bz",
            "Digest x",
            "Bearer ",
            "Basic b3Bz=Bz",
        ] {
            assert_eq!(Credential::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn digests_differ_by_kind_and_secret() {
        let g = GatewayAuth::new(None, Arc::default());
        let a = g.digest(&Credential::Token("x".into()));
        let b = g.digest(&Credential::Token("y".into()));
        let c = g.digest(&Credential::Password {
            user: "x".into(),
            password: String::new(),
        });
        assert!(a != b && a != c && b != c);
    }
}
