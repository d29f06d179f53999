//! Benchmarks that are part of the product: `switchyard bench …`.
//!
//! - [`maze`]: the follower-maze load generator and checker.
//! - [`topics`]: `bench pub | sub | pubsub`, topic throughput and latency.
//! - [`workload`]: the seeded event stream and each client's expected notifications.
//! - [`histogram`]: latency quantiles.

pub mod histogram;
pub mod maze;
pub mod topics;
pub mod workload;
