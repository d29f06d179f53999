//! The client library of the broker port, and the commands built on it (`pub`, `sub`,
//! `topics`, `call`, `services`, `serve`, `events`). The CLI uses only what this module
//! exports; so can any Rust program:
//!
//! - connect: [`Client::connect`] to a [`Target`] (address, TLS, login);
//! - call: [`Client::call`] (any feature: `driver:<name>`, `svc:<name>`, `broker`);
//! - publish with acks: [`publish`]; subscribe with credit: [`subscribe`];
//! - register and serve a named service: [`serve`] with a [`ServiceOptions`] and a
//!   handler ([`command_handler`] runs a command per call);
//! - reconnect: [`retry::with_reconnect`] and its back-off, which `sub`, `events` and
//!   `serve` use.
//!
//! - [`conn`]: where a client connects (host names too) and the blocking connection.
//! - [`tls`]: `--tls`, `--ca`, `--cert`/`--cert-key`: how a client reaches a TLS port.
//! - [`publish`]: `pub`, spreading stdin lines over partitions as the topic routes.
//! - [`subscribe`] and [`format`]: `sub`, its output formats, and resuming after a
//!   reconnect; [`retry`]: the back-off `sub` and `events` reconnect with.
//! - [`topics`]: `topics list | create | delete`; [`misc`]: `call`, `services` and
//!   `events`.
//! - [`serve`](mod@serve): registering a service and answering its calls; [`exec`]: a
//!   handler that runs a command per call.

pub mod conn;
pub mod exec;
pub mod format;
pub mod misc;
pub mod publish;
pub mod retry;
pub mod serve;
pub mod subscribe;
pub mod tls;
pub mod topics;

pub use conn::{BrokerAddr, Client, ConnArgs, Target};
pub use exec::command_handler;
pub use format::Format;
pub use misc::{call, events, services};
pub use publish::{publish, PubOptions, Published};
pub use serve::{serve, Registered, Reply, Request, ServiceOptions};
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
