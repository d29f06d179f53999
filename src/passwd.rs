//! `switchyard passwd`: reads a password or token and prints its argon2id hash, for
//! `password_hash` or `token_hash` in `[[auth.user]]`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Why no hash was printed.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("cannot read the secret: {0}")]
    Read(#[from] std::io::Error),
    #[error("the secret is empty")]
    Empty,
    #[error("the two entries differ")]
    Mismatch,
    #[error("cannot hash: {0}")]
    Hash(String),
}

/// A secret from the terminal without echo (asked twice), or the first line of stdin
/// when it is not a terminal (a pipe or a file).
pub fn read_secret() -> Result<String, PasswdError> {
    let secret = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password or token: ")?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            return Err(PasswdError::Mismatch);
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if secret.is_empty() {
        return Err(PasswdError::Empty);
    }
    Ok(secret)
}

/// The command: prints the hash on stdout, errors on stderr.
pub fn command() -> ExitCode {
    let hashed = read_secret().and_then(|s| {
        switchyard_actors::auth::hash_secret(s.as_bytes())
            .map_err(|e| PasswdError::Hash(e.to_string()))
    });
    match hashed {
        Ok(h) => {
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{h}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
