//! switchyard, the broker binary's thin library: configuration and start-up.
//!
//! Modules:
//! - [`config`]: `config.toml`, its defaults, validation and error messages.
//! - [`broker`]: [`start`] binds the ports and builds the supervised actor tree;
//!   [`run`] serves until a shutdown future resolves, then drains within the grace
//!   period. Tests use both on port 0.
//! - [`logging`]: the tracing subscriber behind `-v`/`-vv` and `RUST_LOG`.
//! - [`cli`]: the command line `main` parses, and its completions and man page.
//! - [`client`]: `switchyard pub`, `sub`, `topics`, `call`, `events`: clients of the
//!   broker port, plain or TLS.
//! - [`login`]: the `--user`/`--password`/`--token` flags and the client's `auth login`.
//! - [`notify`]: systemd readiness (`sd_notify`): ready, reloading, stopping.
//! - [`reload`]: `switchyard reload`, SIGHUP to the running broker.
//! - [`passwd`]: `switchyard passwd`, which prints an argon2id hash for `[[auth.user]]`.
//! - [`bench`]: `switchyard bench maze`, the load generator and checker.
//! - [`devcerts`]: `switchyard dev-certs DIR`, a CA and certificates to try TLS with.
//! - [`health`]: `switchyard health`, a `/healthz` probe for containers and scripts.
//! - [`verify`]: `switchyard verify [--repair]`, the offline check of a data dir.
//! - [`backup`]: `switchyard backup` (a client copy of topics into a data dir's layout)
//!   and `switchyard restore` (into a stopped data dir, or into a running broker).
//!
//! The actors live in `switchyard-actors`, the byte formats in `switchyard-codecs`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backup;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod devcerts;
pub mod health;
pub mod logging;
pub mod login;
pub mod notify;
pub mod passwd;
pub mod reload;
pub mod verify;

pub use broker::{run, start, Broker, StartError};
pub use config::Config;
