//! Client-side credentials: the `--user`, `--password` and `--token` flags every client
//! command takes, and the `auth login` exchange they make right after connecting.

use std::io::{Read, Write};

use bytes::BytesMut;
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits};
use tokio_util::codec::Decoder;

/// What a client logs in with.
#[derive(Clone, PartialEq, Eq)]
pub enum Login {
    Password { user: String, password: String },
    Token(String),
}

impl std::fmt::Debug for Login {
    // Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::Password { user, .. } => write!(f, "Login::Password({user})"),
            Login::Token(_) => f.write_str("Login::Token"),
        }
    }
}

/// The flags, as every client command takes them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LoginArgs {
    /// Log in as this user (with --password)
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// The user's password
    #[arg(
        long,
        env = "SWITCHYARD_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub password: Option<String>,
    /// Log in with a token instead of a user and password
    #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

impl LoginArgs {
    /// The login the flags ask for; `None`: connect without one.
    pub fn login(&self) -> Result<Option<Login>, String> {
        match (&self.user, &self.password, &self.token) {
            (Some(user), Some(password), _) => Ok(Some(Login::Password {
                user: user.clone(),
                password: password.clone(),
            })),
            (Some(_), None, _) => Err("--user needs --password (or SWITCHYARD_PASSWORD)".into()),
            (None, _, Some(token)) => Ok(Some(Login::Token(token.clone()))),
            (None, _, None) => Ok(None),
        }
    }
}

/// The `auth login` envelope for `l`.
pub fn login_envelope(l: &Login) -> Envelope {
    match l {
        Login::Password { user, password } => Envelope::new("auth", "login")
            .with_label("user", user.clone())
            .with_label("password", password.clone()),
        Login::Token(t) => Envelope::new("auth", "login").with_label("token", t.clone()),
    }
}

/// Sends `auth login` on `s` and reads the answer. Reads nothing past it: the broker
/// sends nothing else before the next request.
pub fn login(s: &mut (impl Read + Write), l: &Login) -> Result<(), String> {
    send_login(s, l)?;
    read_login_answer(s)
}

/// Sends `auth login` (for a connection whose halves are used apart, as the bench's).
pub fn send_login(w: &mut impl Write, l: &Login) -> Result<(), String> {
    let env = login_envelope(l);
    let mut b = BytesMut::with_capacity(env.encoded_len());
    env.encode(&mut b).map_err(|e| e.to_string())?;
    w.write_all(&b).map_err(|e| format!("login: {e}"))?;
    w.flush().map_err(|e| format!("login: {e}"))
}

/// Reads the answer to `auth login`, and nothing past it.
pub fn read_login_answer(r: &mut impl Read) -> Result<(), String> {
    let mut codec = FrameCodec::detect(Limits::default());
    let mut buf = BytesMut::new();
    loop {
        match codec.decode(&mut buf).map_err(|e| e.to_string())? {
            Some(Frame::Envelope(e)) if e.is("auth", "ok") => return Ok(()),
            Some(Frame::Envelope(e)) if e.is("auth", "error") => {
                return Err(format!(
                    "login refused: {}",
                    e.labels.get_str("error").unwrap_or("?")
                ))
            }
            Some(_) => return Err("login: unexpected answer from the broker".into()),
            None => {}
        }
        // One byte at a time: whatever follows the answer is the caller's to read.
        let mut byte = [0u8; 1];
        let n = r.read(&mut byte).map_err(|e| format!("login: {e}"))?;
        if n == 0 {
            return Err("login: the broker closed the connection".into());
        }
        buf.extend_from_slice(&byte[..n]);
    }
}
