//! Benchmarks that are part of the product: `switchyard bench …`.
//!
//! - [`cli`]: the command-line options of `switchyard bench`.
//! - [`maze`]: the follower-maze load generator and checker.
//! - [`nats`]: `bench nats`, the same measurements against a NATS server.
//! - [`rpc`]: `bench rpc`, the RPC round trip: latency one call at a time, and the
//!   rate with many in flight.
//! - [`topics`]: `bench pub | sub | pubsub`, topic throughput and latency.
//! - [`workload`]: the seeded event stream and each client's expected notifications.
//! - [`histogram`]: latency quantiles.
//! - [`progress`]: the progress bar.
//! - [`rss`]: the broker's resident memory during a run.

pub mod cli;
pub mod histogram;
pub mod maze;
pub mod nats;
pub mod progress;
pub mod rpc;
pub mod rss;
pub mod topics;
pub mod workload;
