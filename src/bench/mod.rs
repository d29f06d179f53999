//! Benchmarks that are part of the product: `switchyard bench …`.
//!
//! - [`cli`]: the command-line options of `switchyard bench`.
//! - [`idle`]: `bench idle`, what idle connections cost the broker: memory per
//!   connection, and a ping's round trip among them.
//! - [`many`]: `bench topics`, what thousands of topics cost the broker.
//! - [`maze`]: the follower-maze load generator and checker.
//! - [`nats`]: `bench nats`, the same measurements against a NATS server.
//! - [`rpc`]: `bench rpc`, the RPC round trip: latency one call at a time, and the
//!   rate with many in flight.
//! - [`responder`]: `bench rpc --serve`: the bench's own service instances or remote
//!   driver, answering the calls it makes.
//! - [`topics`]: `bench pub | sub | pubsub`, topic throughput and latency.
//! - [`workload`]: the seeded event stream and each client's expected notifications.
//! - [`histogram`]: latency quantiles.
//! - [`progress`]: the progress bar.
//! - [`rss`]: the broker's resident memory during a run.
//! - [`process`]: the broker's pid from its port, its descriptors and memory.

pub mod cli;
pub mod histogram;
pub mod idle;
pub mod many;
pub mod maze;
pub mod nats;
pub mod process;
pub mod progress;
pub mod responder;
pub mod rpc;
pub mod rss;
pub mod topics;
pub mod workload;
