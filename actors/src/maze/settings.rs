//! What `[maze]` in the config tells the maze actors.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a new event-source connection does to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnNewSource {
    /// Sequence back to 1, follow graph cleared, waiting events dropped.
    #[default]
    Reset,
    /// Keep the sequence and the graph: the new source continues the stream.
    Continue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MazeSettings {
    /// Events the reorder ring holds ahead of the next sequence number.
    pub reorder_window: usize,
    /// A user client that has not sent its id line by then is closed.
    pub id_timeout: Duration,
    pub on_new_source: OnNewSource,
    /// Skip a missing sequence number after this long; `None`: wait for ever.
    pub gap_timeout: Option<Duration>,
    /// Distinct user ids the follow graph may hold.
    pub max_users: usize,
    /// While clients together hold more unsent output than this, the source is not
    /// read: the backlog waits in the kernel, not in the broker's memory.
    pub pace_output_bytes: usize,
    /// A client over this much unsent output also pauses the source (half its budget).
    pub client_high_water_bytes: usize,
    /// The longest one client may hold the stream back: over its high-water mark, or
    /// with output that does not move, for this long while the source waits, and it
    /// is cut off as a slow consumer.
    pub client_stall: Duration,
    /// Append every applied event to this topic (partition 0).
    pub journal_topic: Option<String>,
}

impl Default for MazeSettings {
    fn default() -> Self {
        MazeSettings {
            reorder_window: 65_536,
            id_timeout: Duration::from_secs(10),
            on_new_source: OnNewSource::Reset,
            gap_timeout: None,
            max_users: 1_000_000,
            pace_output_bytes: 8 << 20,
            client_high_water_bytes: 2 << 20,
            client_stall: Duration::from_secs(10),
            journal_topic: None,
        }
    }
}
