//! Helpers for the auth tests: cheap argon2id hashes, `[auth]` sections, logins.

use argon2::password_hash::{rand_core::OsRng, SaltString};
use argon2::{Argon2, PasswordHasher};
use switchyard_codecs::Envelope;

use super::topics::Client;

/// An argon2id hash with small parameters: the tests check logic, not cost.
pub fn hash(secret: &str) -> String {
    let params = argon2::Params::new(64, 1, 1, None).unwrap();
    let a = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    a.hash_password(secret.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string()
}

/// `[auth]` with `settings` lines and one `[[auth.user]]` per `(name, password, body)`.
pub fn section(settings: &str, users: &[(&str, &str, &str)]) -> String {
    let mut s = format!("[auth]\n{settings}\n");
    for (name, pw, body) in users {
        s += &format!(
            "[[auth.user]]\nname = \"{name}\"\npassword_hash = \"{}\"\n{body}\n",
            hash(pw)
        );
    }
    s
}

pub fn login_env(user: &str, password: &str, id: Option<&str>) -> Envelope {
    let mut e = Envelope::new("auth", "login")
        .with_label("user", user.to_string())
        .with_label("password", password.to_string());
    if let Some(id) = id {
        e = e.with_label("id", id.to_string());
    }
    e
}

pub fn bytes(e: &Envelope) -> Vec<u8> {
    let mut b = bytes::BytesMut::new();
    e.encode(&mut b).unwrap();
    b.to_vec()
}

/// Logs `c` in and returns the `auth ok`; panics on anything else.
pub async fn login(c: &mut Client, user: &str, password: &str) -> Envelope {
    c.send(&bytes(&login_env(user, password, None))).await;
    let ok = c.next().await;
    assert!(ok.is("auth", "ok"), "login as {user}: {ok:?}");
    ok
}
