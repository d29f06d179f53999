//! [`Users`]: the configured accounts and their credential checks.
//!
//! Every check costs one argon2 verification or more (tens of milliseconds of CPU), so
//! callers on an actix arbiter use the `*_blocking` forms, which run on the blocking
//! pool. An unknown user is verified against a dummy hash with the same parameters as
//! the real ones, so the time taken does not tell whether a name exists. A token is
//! verified against every user's `token_hash` (all of them, every time). At most
//! [`MAX_CONCURRENT_CHECKS`] checks run at once (each holds its hash's memory cost, 19
//! MiB by default); the rest wait their turn without a thread, so a flood of logins
//! cannot exhaust memory or the blocking pool.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use subtle::{Choice, ConditionallySelectable};
use tokio::sync::Semaphore;

use super::config::{AuthConfig, AuthConfigError};
use super::glob::{FeatureGlob, TopicGlob};
use super::principal::Principal;

#[derive(Debug)]
struct Account {
    password_hash: Option<String>,
    principal: Arc<Principal>,
}

/// The accounts of `[[auth.user]]`, compiled.
#[derive(Debug)]
pub struct Users {
    by_name: HashMap<String, Account>,
    tokens: Vec<(String, Arc<Principal>)>,
    /// Verified instead when the user is unknown or has no password.
    dummy: String,
    /// Credential checks allowed to run at once.
    checks: Arc<Semaphore>,
}

/// Credential checks that run at once, at most (more wait for a turn).
pub const MAX_CONCURRENT_CHECKS: usize = 4;

/// argon2id with the parameters `switchyard passwd` uses (m=19456, t=2, p=1).
pub fn hash_secret(secret: &[u8]) -> Result<String, argon2::password_hash::Error> {
    hash_with(secret, argon2::Params::default())
}

fn hash_with(
    secret: &[u8],
    params: argon2::Params,
) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let a = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    Ok(a.hash_password(secret, &salt)?.to_string())
}

/// Whether `secret` matches the PHC string `hash` (constant time in the comparison).
pub fn verify_secret(secret: &[u8], hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(h) => Argon2::default().verify_password(secret, &h).is_ok(),
        Err(_) => false,
    }
}

impl Users {
    /// Compiles `config` (validated again here). Makes one hash for the dummy, so it
    /// costs tens of milliseconds: call it at start-up, not per connection.
    pub fn from_config(config: &AuthConfig) -> Result<Users, AuthConfigError> {
        config.validate()?;
        let compile_topics = |v: &[String]| -> Vec<TopicGlob> {
            v.iter().filter_map(|g| TopicGlob::parse(g).ok()).collect()
        };
        let mut by_name = HashMap::new();
        let mut tokens = Vec::new();
        for u in &config.users {
            let principal = Arc::new(
                Principal::new(
                    u.name.clone(),
                    compile_topics(&u.publish),
                    compile_topics(&u.subscribe),
                    u.call
                        .iter()
                        .filter_map(|g| FeatureGlob::parse(g).ok())
                        .collect::<Vec<_>>(),
                    u.admin,
                )
                .with_serve(
                    u.serve
                        .iter()
                        .filter_map(|g| FeatureGlob::parse(g).ok())
                        .collect(),
                ),
            );
            if let Some(t) = &u.token_hash {
                tokens.push((t.clone(), principal.clone()));
            }
            by_name.insert(
                u.name.clone(),
                Account {
                    password_hash: u.password_hash.clone(),
                    principal,
                },
            );
        }
        // The dummy costs what the users' hashes cost.
        let params = config
            .users
            .iter()
            .find_map(|u| u.password_hash.as_deref().or(u.token_hash.as_deref()))
            .and_then(|h| PasswordHash::new(h).ok())
            .and_then(|h| argon2::Params::try_from(&h).ok())
            .unwrap_or_default();
        let dummy =
            hash_with(b"switchyard: no such user", params).map_err(|e| AuthConfigError {
                user: None,
                key: "user",
                value: String::new(),
                message: format!("cannot make the dummy hash: {e}"),
            })?;
        Ok(Users {
            by_name,
            tokens,
            dummy,
            checks: Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS)),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The principal named `name`, with no secret checked: for a peer whose verified
    /// client certificate names it (mutual TLS).
    pub fn named(&self, name: &str) -> Option<Arc<Principal>> {
        self.by_name.get(name).map(|a| a.principal.clone())
    }

    /// The principal named `user`, when `password` is theirs. CPU-heavy: not on an
    /// arbiter (see [`Users::verify_password_blocking`]).
    pub fn verify_password(&self, user: &str, password: &str) -> Option<Arc<Principal>> {
        let account = self.by_name.get(user);
        let (hash, known) = match account.and_then(|a| a.password_hash.as_deref()) {
            Some(h) => (h, true),
            None => (self.dummy.as_str(), false),
        };
        let ok = verify_secret(password.as_bytes(), hash);
        (ok && known)
            .then(|| account.map(|a| a.principal.clone()))
            .flatten()
    }

    /// The principal whose `token_hash` matches `token`. Every token hash is verified,
    /// whatever matched, so the time taken does not depend on which one did.
    pub fn verify_token(&self, token: &str) -> Option<Arc<Principal>> {
        if self.tokens.is_empty() {
            let _ = verify_secret(token.as_bytes(), &self.dummy);
            return None;
        }
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, (hash, _)) in self.tokens.iter().enumerate() {
            let hit = Choice::from(u8::from(verify_secret(token.as_bytes(), hash)));
            index.conditional_assign(&(i as u64), hit & !found);
            found |= hit;
        }
        bool::from(found)
            .then(|| self.tokens.get(index as usize).map(|(_, p)| p.clone()))
            .flatten()
    }

    /// [`Users::verify_password`] on the blocking pool.
    pub async fn verify_password_blocking(
        self: Arc<Self>,
        user: String,
        password: String,
    ) -> Option<Arc<Principal>> {
        let _turn = self.checks.clone().acquire_owned().await.ok()?;
        tokio::task::spawn_blocking(move || self.verify_password(&user, &password))
            .await
            .ok()
            .flatten()
    }

    /// [`Users::verify_token`] on the blocking pool.
    pub async fn verify_token_blocking(self: Arc<Self>, token: String) -> Option<Arc<Principal>> {
        let _turn = self.checks.clone().acquire_owned().await.ok()?;
        tokio::task::spawn_blocking(move || self.verify_token(&token))
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::config::UserConfig;

    /// Cheap parameters: the tests check logic, not cost.
    fn fast(secret: &str) -> String {
        hash_with(
            secret.as_bytes(),
            argon2::Params::new(256, 1, 1, None).unwrap(),
        )
        .unwrap()
    }

    fn users() -> Users {
        let config = AuthConfig {
            users: vec![
                UserConfig {
                    name: "ops".into(),
                    password_hash: Some(fast("pw")),
                    token_hash: Some(fast("tok-ops")),
                    publish: vec!["orders".into()],
                    ..UserConfig::default()
                },
                UserConfig {
                    name: "bot".into(),
                    token_hash: Some(fast("tok-bot")),
                    ..UserConfig::default()
                },
            ],
            ..AuthConfig::default()
        };
        Users::from_config(&config).unwrap()
    }

    #[test]
    fn passwords_verify() {
        let u = users();
        assert_eq!(u.verify_password("ops", "pw").unwrap().name, "ops");
        assert!(u.verify_password("ops", "nope").is_none());
        assert!(u.verify_password("nobody", "pw").is_none());
        // A token-only user cannot log in with a password.
        assert!(u.verify_password("bot", "tok-bot").is_none());
    }

    #[test]
    fn tokens_verify() {
        let u = users();
        assert_eq!(u.verify_token("tok-ops").unwrap().name, "ops");
        assert_eq!(u.verify_token("tok-bot").unwrap().name, "bot");
        assert!(u.verify_token("tok-x").is_none());
    }

    #[tokio::test]
    async fn checks_past_the_limit_wait_their_turn() {
        let u = Arc::new(users());
        let all: Vec<_> = (0..3 * MAX_CONCURRENT_CHECKS)
            .map(|i| {
                let pw = if i % 2 == 0 { "pw" } else { "no" };
                tokio::spawn(u.clone().verify_password_blocking("ops".into(), pw.into()))
            })
            .collect();
        for (i, h) in all.into_iter().enumerate() {
            assert_eq!(h.await.unwrap().is_some(), i % 2 == 0);
        }
        assert_eq!(u.checks.available_permits(), MAX_CONCURRENT_CHECKS);
    }

    #[test]
    fn the_dummy_has_the_users_parameters() {
        let u = users();
        let h = PasswordHash::new(&u.dummy).unwrap();
        assert_eq!(argon2::Params::try_from(&h).unwrap().m_cost(), 256);
    }

    #[test]
    fn hash_secret_makes_default_argon2id() {
        let h = hash_secret(b"s3cret").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_secret(b"s3cret", &h));
        assert!(!verify_secret(b"s3cret!", &h));
    }

    #[test]
    fn config_errors_name_the_key() {
        let mut c = AuthConfig {
            users: vec![UserConfig {
                name: "a".into(),
                ..UserConfig::default()
            }],
            ..AuthConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "name");
        c.users[0].password_hash =
            Some("$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into());
        let e = c.validate().unwrap_err();
        assert_eq!((e.key, e.user), ("password_hash", Some(0)));
        assert!(e.message.contains("argon2id"), "{}", e.message);
        c.users[0].password_hash = Some("plain".into());
        assert_eq!(c.validate().unwrap_err().key, "password_hash");
        c.users[0].password_hash = Some(fast("x"));
        c.users[0].publish = vec!["a*".into()];
        let e = c.validate().unwrap_err();
        assert_eq!((e.key, e.value.as_str()), ("publish", "a*"));
        c.users[0].publish.clear();
        c.users.push(c.users[0].clone());
        let e = c.validate().unwrap_err();
        assert_eq!((e.key, e.user), ("name", Some(1)));
        assert!(e.message.contains("twice"));
    }
}
