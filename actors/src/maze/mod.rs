//! The follower maze: an event source's pipe-delimited events, applied strictly in
//! sequence order, fanned out along the follow graph to connected user clients.
//!
//! - [`router`]: [`MazeRouter`], the one actor that owns the order, the graph and the
//!   per-user output; it never waits on a client.
//! - [`source`]: [`EventSource`], the event-port connection: parses a socket read into
//!   one batch and is not read again until the router has taken it.
//! - [`session`]: [`Session`], a user client: its id line, then budgeted writes of the
//!   chunks the router sends it.
//! - [`reorder`]: the bounded reorder buffer.
//! - [`graph`]: the follow graph with each user's online followers.
//! - [`messages`]: what sources and sessions say to the router.
//! - [`load`]: a session's backlog, shared with the router for flow control.
//! - [`settings`]: the `[maze]` options.

pub mod graph;
pub mod load;
pub mod messages;
pub mod reorder;
pub mod router;
pub mod session;
pub mod settings;
pub mod source;

pub use load::SessionLoad;
pub use messages::RouterStatus;
pub use router::{MazeRouter, RouterSlot};
pub use session::Session;
pub use settings::{MazeSettings, OnNewSource};
pub use source::EventSource;
