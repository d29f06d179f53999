//! `switchyard pub`, `sub`, `topics`, `call` and `events`: small clients of the broker
//! port, speaking the `topic` channel with the same codec the broker uses.
//!
//! - [`conn`]: where a client connects (host names too) and the blocking connection.
//! - [`tls`]: `--tls`, `--ca`, `--cert`/`--cert-key`: how a client reaches a TLS port.
//! - [`publish`]: `pub`, spreading stdin lines over partitions as the topic routes.
//! - [`subscribe`] and [`format`]: `sub`, its output formats, and resuming after a
//!   reconnect; [`retry`]: the back-off `sub` and `events` reconnect with.
//! - [`topics`]: `topics list | create | delete`; [`misc`]: `call` and `events`.

pub mod conn;
pub mod format;
pub mod misc;
pub mod publish;
pub mod retry;
pub mod subscribe;
pub mod tls;
pub mod topics;

pub use conn::{BrokerAddr, Client, ConnArgs, Target};
pub use format::Format;
pub use misc::{call, events};
pub use publish::{publish, PubOptions, Published};
pub use subscribe::{subscribe, SubOptions};
pub use tls::{Connector, TlsOptions};
pub use topics::{create_topic, delete_topic, topics, CreateArgs};

pub use crate::login::Login;

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the broker at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Writing what the command prints failed (a closed pipe, a full disk): never a
    /// reason to reconnect.
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    #[error("the broker closed the connection")]
    Closed,
    #[error("the broker answered: {0}")]
    Broker(String),
    #[error("bad frame from the broker: {0}")]
    Frame(String),
    #[error("{0}")]
    Login(String),
    #[error("tls: {0}")]
    Tls(String),
    /// What the user asked for cannot be done (before anything is sent).
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// A failure a new connection may cure: the broker went away or is not back yet.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. } | ClientError::Io(_) | ClientError::Closed
        )
    }
}
