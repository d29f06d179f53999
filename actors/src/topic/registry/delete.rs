//! [`DeleteTopic`]: a topic's partitions retired, its groups and committed offsets
//! forgotten, its folder removed. While that runs the name cannot be created again (an
//! auto-create would open the old files), and a crash half-way leaves nothing served:
//! the folder is first renamed into `<storage.dir>/.trash/`, which start-up empties.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;
use tracing::{info, warn};

use super::TopicRegistry;
use crate::topic::partition::Retire;
use crate::topic::TopicError;

/// The folder under `storage.dir` where deleted topics are removed from.
pub const TRASH: &str = ".trash";

#[derive(Debug, Message)]
#[rtype(result = "Result<(), TopicError>")]
pub struct DeleteTopic {
    pub topic: String,
}

impl Handler<DeleteTopic> for TopicRegistry {
    type Result = ResponseActFuture<Self, Result<(), TopicError>>;

    fn handle(&mut self, d: DeleteTopic, _: &mut Self::Context) -> Self::Result {
        let name = d.topic;
        let refused = |e| Box::pin(fut::ready(Err(e))) as Self::Result;
        if self.settings.topics.iter().any(|t| t.name == name) {
            return refused(TopicError::Configured { topic: name });
        }
        if self.deleting.contains(&name) {
            return refused(TopicError::Deleting { topic: name });
        }
        self.dedup.forget_topic(&name);
        let Some(topic) = self.topics.remove(&name) else {
            return refused(TopicError::UnknownTopic { topic: name });
        };
        self.deleting.insert(name.clone());
        self.end_groups_of(&name);
        let dir = self.settings.dir.clone();
        let parts = topic.partitions;
        let n = parts.len();
        let topic = name.clone();
        let work = async move {
            for p in &parts {
                // A partition already stopped has nothing left to end.
                let _ = p.send(Retire).await;
            }
            let removed = tokio::task::spawn_blocking(move || remove_topic_dir(&dir, &topic)).await;
            match removed {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(format!("removal did not finish: {e}")),
            }
        };
        Box::pin(work.into_actor(self).map(move |r, act, _| {
            act.free_name_after_stores(&name);
            match r {
                Ok(()) => {
                    info!(topic = %name, partitions = n, "topic deleted");
                    Ok(())
                }
                Err(e) => {
                    warn!(topic = %name, error = %e, "topic deleted, but its files were not all removed");
                    Err(TopicError::Partition(format!(
                        "topic `{name}` was deleted, but its files were not all removed: {e}"
                    )))
                }
            }
        }))
    }
}

/// Moves `<dir>/<topic>` into the trash (durably), then removes it.
fn remove_topic_dir(dir: &Path, topic: &str) -> Result<(), String> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let from = dir.join(topic);
    if !from.exists() {
        return Ok(());
    }
    let trash = dir.join(TRASH);
    std::fs::create_dir_all(&trash).map_err(|e| e.to_string())?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let to: PathBuf = trash.join(format!(
        "{topic}.{nanos}.{}",
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::rename(&from, &to).map_err(|e| e.to_string())?;
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| e.to_string())?;
    std::fs::remove_dir_all(&to).map_err(|e| e.to_string())
}

/// Empties the trash a crash left behind (topics whose deletion did not finish).
pub(super) fn empty_trash(dir: &Path) {
    let trash = dir.join(TRASH);
    if trash.exists() {
        match std::fs::remove_dir_all(&trash) {
            Ok(()) => info!("removed the rest of topics deleted before a restart"),
            Err(e) => warn!(error = %e, "cannot empty the trash of deleted topics"),
        }
    }
}
