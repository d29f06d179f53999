//! Drivers: dipper-protocol processes under supervision, RPC between them, and the
//! event bus with its rules.
//!
//! Modules:
//! - [`host`]: [`DriverHost`], which owns one [`Driver`] per `[[driver]]`, routes RPC
//!   and events, reloads the set, and stops it at shutdown.
//! - [`broker_feature`]: the methods of the feature `broker` (ping, tree, drivers,
//!   publish, fetch).
//! - [`route`]: how the host routes `rpc call`/`rpc return` and `eventbus` frames.
//! - [`driver`]: [`Driver`], one driver's process and lifecycle.
//! - [`logpump`]: a driver's stderr and fd 3 logged within a line rate and length.
//! - [`process`]: spawning (stdin/stdout pipes, stderr and fd 3 logged) and ending
//!   (stdin closed, SIGTERM, SIGKILL) a driver process.
//! - [`reaper`]: the broker as child subreaper; a driver's descendants end with it.
//! - [`remote`]: [`remote::RemoteDriver`], a driver that connected to the broker port
//!   and said `driver hello`; `remote_host`: the host's side of it (hello, its frames,
//!   its connection closing).
//! - [`rpc`]: calls in flight, their deadlines and counters; Go durations.
//! - [`services`]: named services (`svc:<name>`): instances, picking one, counters;
//!   [`service_route`]: `rpc register`/`unregister` and calls to a service.
//! - [`deadlines`]: the one timer that answers calls whose deadline passed.
//! - [`bus`]: rules, `eventbus command`s, client subscriptions.
//! - [`conditions`]: `CompareAll`, the dipper condition language.
//! - [`mapdata`]: `GetMapData` dot paths.
//! - [`spec`]: what the configuration says; [`status`]: what the host reports.

pub mod broker_feature;
pub mod bus;
pub mod conditions;
pub mod deadlines;
pub mod driver;
pub mod host;
pub mod logpump;
pub mod mapdata;
pub mod process;
pub mod reaper;
pub mod remote;
mod remote_host;
pub mod route;
pub mod rpc;
pub mod service_route;
pub mod services;
pub mod spec;
pub mod status;

use actix::prelude::*;
use bytes::Bytes;
use std::time::Duration;
use switchyard_codecs::Envelope;

pub use driver::Driver;
pub use host::{DriverHost, DriversSlot};
pub use service_route::ListServices;
pub use services::ServiceView;
pub use spec::{DriverLogLimits, DriverSpec, HostSettings, RuleSpec};
pub use status::{DriverState, DriverStatus};

/// A driver's status changed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DriverUpdate(pub DriverStatus);

/// A frame a driver wrote that is not about its own state.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FromDriver {
    pub name: String,
    pub env: Envelope,
}

/// A frame for a TCP client of the broker port (an RPC return, a call, an event).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ToClient(pub Envelope);

/// An `rpc` or `eventbus` frame from a TCP client; its feature is `client:<id>`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FromClient {
    pub id: u64,
    pub to: Recipient<ToClient>,
    pub env: Envelope,
}

/// A client connection closed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ClientGone(pub u64);

/// Calls a feature's RPC method from the broker itself (caller `-`).
#[derive(Debug, Message)]
#[rtype(result = "Result<Bytes, String>")]
pub struct CallFeature {
    pub feature: String,
    pub method: String,
    pub payload: Bytes,
    /// Defaults to `[drivers] rpc_timeout_ms`.
    pub timeout: Option<Duration>,
}

/// Every driver's status.
#[derive(Debug, Message)]
#[rtype(result = "Vec<DriverStatus>")]
pub struct ListDrivers;

/// Answered once every required driver is alive, or with why one failed.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct WaitReady;

/// Applies a new driver and rule set; answered with what changed.
#[derive(Debug, Message)]
#[rtype(result = "ReloadSummary")]
pub struct Reload(pub HostSettings);

/// What a reload did, by driver name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadSummary {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub cold: Vec<String>,
    pub hot: Vec<String>,
    pub unchanged: Vec<String>,
}

/// The host's counters.
#[derive(Debug, Message)]
#[rtype(result = "HostStats")]
pub struct GetHostStats;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, MessageResponse)]
pub struct HostStats {
    pub rpc: rpc::RpcStats,
    pub bus: bus::BusStats,
    pub rpc_in_flight: usize,
}

/// Registers for every driver status change; the current states are sent at once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WatchDrivers(pub Recipient<DriverUpdate>);

/// Where `chat` frames from drivers and TCP clients go.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RouteChat(pub Recipient<crate::chat::ChatFrame>);

/// Sends one frame to a feature (`driver:<name>` or `client:<id>`).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct SendTo {
    pub feature: String,
    pub env: Envelope,
}
