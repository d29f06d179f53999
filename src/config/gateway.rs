//! `[gateway]`: the HTTP/JSON and gRPC front ends.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_actors::gateway::GatewaySettings;

use super::{Config, Ranged};

fn request_timeout() -> Ranged<1, 3_600_000> {
    Ranged::new(10_000)
}

fn stream_buffer() -> Ranged<65_536, { 64 * super::GIB }> {
    Ranged::new(4 * super::MIB)
}

fn stream_keepalive() -> Ranged<10, 3_600_000> {
    Ranged::new(15_000)
}

/// `[gateway]`; off when absent, and each front end off when its bind is left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(
        default,
        deserialize_with = "super::bind::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub http_bind: Option<SocketAddr>,
    #[serde(
        default,
        deserialize_with = "super::bind::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub grpc_bind: Option<SocketAddr>,
    /// Gone: refused with a config error naming `[auth]`, its replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default = "request_timeout")]
    pub request_timeout_ms: Ranged<1, 3_600_000>,
    /// Bytes of records one SSE or gRPC stream may hold that its client has not read.
    #[serde(default = "stream_buffer")]
    pub stream_buffer_bytes: Ranged<65_536, { 64 * super::GIB }>,
    /// An SSE stream that wrote nothing for this long writes a `: keep-alive` comment;
    /// the gRPC server pings its HTTP/2 connections as often.
    #[serde(default = "stream_keepalive")]
    pub stream_keepalive_ms: Ranged<10, 3_600_000>,
    /// HTTPS and gRPC over TLS (`[tls]` has the certificates).
    #[serde(default)]
    pub tls: bool,
}

impl Config {
    /// What the gateway is told, when `[gateway]` is present.
    /// The certificates are loaded at start-up and given to the gateway afterwards.
    pub fn gateway_settings(&self) -> Option<(GatewaySettings, Duration)> {
        let g = self.gateway.as_ref()?;
        Some((
            GatewaySettings {
                auth: None,
                grace: Duration::from_millis(self.shutdown.grace_ms),
                stream_buffer_bytes: g.stream_buffer_bytes.get(),
                stream_keepalive: Duration::from_millis(g.stream_keepalive_ms.get()),
                tls: None,
            },
            Duration::from_millis(g.request_timeout_ms.get()),
        ))
    }
}
