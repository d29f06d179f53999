//! A topic's own settings, kept beside its partitions in `<dir>/<topic>/topic.json`,
//! so that a topic a client created with `key_hash` routing, an fsync override or a
//! retention keeps them across restarts. A `[[topic]]` in the config wins over the file.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{CreateTopic, Routing, TopicRegistry, TopicSpec};
use crate::topic::partition::FsyncPolicy;
use crate::topic::TopicError;

const FILE: &str = "topic.json";

/// The file's shape: plain words and milliseconds, readable by an operator.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    partitions: u32,
    routing: Routing,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fsync: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fsync_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retention_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retention_bytes: Option<u64>,
}

impl Meta {
    fn of(spec: &TopicSpec) -> Meta {
        Meta {
            partitions: spec.partitions,
            routing: spec.routing,
            fsync: spec.fsync.map(|f| f.name().to_string()),
            fsync_interval_ms: spec.fsync.and_then(FsyncPolicy::interval_ms),
            retention_ms: spec.retention_ms,
            retention_bytes: spec.retention_bytes,
        }
    }

    fn into_spec(self, name: &str) -> Result<TopicSpec, String> {
        let fsync = match self.fsync.as_deref() {
            None => None,
            Some("always") => Some(FsyncPolicy::Always),
            Some("never") => Some(FsyncPolicy::Never),
            Some("interval") => Some(FsyncPolicy::Interval(Duration::from_millis(
                self.fsync_interval_ms.unwrap_or(1000).max(1),
            ))),
            Some(other) => return Err(format!("unknown fsync `{other}`")),
        };
        Ok(TopicSpec {
            name: name.to_string(),
            partitions: self.partitions,
            routing: self.routing,
            fsync,
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
        })
    }
}

/// Why creating `c` again conflicts with the existing topic `spec`: an option the
/// request names that differs. Creating a topic again with the same options, or none,
/// is fine.
pub(super) fn conflict(spec: &TopicSpec, c: &CreateTopic) -> Option<TopicError> {
    let differs = |what: &'static str, has: String, asked: String| {
        Some(TopicError::Conflict {
            topic: spec.name.clone(),
            what,
            has,
            asked,
        })
    };
    if let Some(p) = c.partitions.filter(|&p| p != spec.partitions) {
        return differs("partitions", spec.partitions.to_string(), p.to_string());
    }
    if let Some(r) = c.routing.filter(|&r| r != spec.routing) {
        return differs("routing", spec.routing.name().into(), r.name().into());
    }
    if let Some(f) = c.fsync.filter(|&f| Some(f) != spec.fsync) {
        let name = |f: FsyncPolicy| match f.interval_ms() {
            Some(ms) => format!("interval ({ms} ms)"),
            None => f.name().to_string(),
        };
        let has = spec.fsync.map_or("the default".to_string(), name);
        return differs("fsync", has, name(f));
    }
    if let Some(ms) = c.retention_ms.filter(|&ms| Some(ms) != spec.retention_ms) {
        let has = spec
            .retention_ms
            .map_or("the default".to_string(), |v| v.to_string());
        return differs("retention_ms", has, ms.to_string());
    }
    if let Some(b) = c
        .retention_bytes
        .filter(|&b| Some(b) != spec.retention_bytes)
    {
        let has = spec
            .retention_bytes
            .map_or("the default".to_string(), |v| v.to_string());
        return differs("retention_bytes", has, b.to_string());
    }
    None
}

/// The spec stored for the topic in `topic_dir`; `None` when there is none or it is
/// unreadable (logged: the topic then opens with the defaults, as before the file).
pub(super) fn load(topic_dir: &Path, name: &str) -> Option<TopicSpec> {
    let bytes = std::fs::read(topic_dir.join(FILE)).ok()?;
    match serde_json::from_slice::<Meta>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|m| m.into_spec(name))
    {
        Ok(spec) => Some(spec),
        Err(why) => {
            warn!(topic = %name, file = FILE, error = %why, "topic settings unreadable, using defaults");
            None
        }
    }
}

/// Stores `spec` unless the file already says the same. The topic's folder exists (its
/// partitions are in it): one deleted meanwhile is not made again.
fn store(topic_dir: &Path, spec: &TopicSpec) -> std::io::Result<()> {
    if load(topic_dir, &spec.name).as_ref() == Some(spec) {
        return Ok(());
    }
    let json = serde_json::to_vec_pretty(&Meta::of(spec)).map_err(std::io::Error::other)?;
    replace_in(topic_dir, FILE, &json)
}

/// The settings stored in `topic_dir/topic.json` for topic `name`, as a backup reads
/// them back; `None` when there is no such file or it is unreadable.
pub fn load_spec(topic_dir: &Path, name: &str) -> Option<TopicSpec> {
    load(topic_dir, name)
}

/// Writes `topic_dir/topic.json` for `spec` (replaced atomically and synced), as a
/// backup does for the topics it copies; `topic_dir` must exist.
pub fn store_spec(topic_dir: &Path, spec: &TopicSpec) -> std::io::Result<()> {
    store(topic_dir, spec)
}

/// [`store`]; a failure is logged: the topic works, only a restart would fall back to
/// the defaults.
pub(super) fn store_or_warn(topic_dir: &Path, spec: &TopicSpec) {
    if let Err(e) = store(topic_dir, spec) {
        warn!(topic = %spec.name, error = %e, "topic settings not stored");
    }
}

/// Stores of `topic.json` running at once: enough for the disk to share its commits
/// between them, few enough that a burst of creates does not start a thread each (each
/// keeps its stack and allocator heap for a while: 80 MB after 5,000 creates).
static STORES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(16);

/// A `topic create` is answered once its `topic.json` is stored; the two syncs of that
/// run on the blocking pool, so creates in flight share the disk's commits and the
/// registry's thread goes on (inline, 5,000 creates took 37 s here).
impl Handler<CreateTopic> for TopicRegistry {
    type Result = ResponseFuture<Result<(), TopicError>>;

    fn handle(&mut self, c: CreateTopic, _: &mut Self::Context) -> Self::Result {
        if let Some(t) = self.topics.get(&c.name) {
            return Box::pin(std::future::ready(
                conflict(&t.spec, &c).map_or(Ok(()), Err),
            ));
        }
        let spec = self.topic_spec(c);
        let created = self
            .check_limits(&spec)
            .and_then(|()| self.create_as(spec.clone(), false, false));
        if let Err(e) = created {
            return Box::pin(std::future::ready(Err(e)));
        }
        let dir = self.settings.dir.join(&spec.name);
        Box::pin(async move {
            let name = spec.name.clone();
            // The semaphore is never closed: a permit always comes.
            let _permit = STORES.acquire().await;
            if let Err(e) = tokio::task::spawn_blocking(move || store_or_warn(&dir, &spec)).await {
                warn!(topic = %name, error = %e, "topic settings not stored");
            }
            Ok(())
        })
    }
}

/// Replaces `dir/name` with `bytes` so that a crash leaves the old file or the new one;
/// `dir` must exist.
pub(super) fn replace_in(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, dir.join(name))?;
    // The rename itself is durable once the folder is synced.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fsync: Option<FsyncPolicy>) -> TopicSpec {
        TopicSpec {
            name: "t".into(),
            partitions: 3,
            routing: Routing::KeyHash,
            fsync,
            retention_ms: Some(60_000),
            retention_bytes: None,
        }
    }

    #[test]
    fn round_trips_every_fsync_policy() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            None,
            Some(FsyncPolicy::Always),
            Some(FsyncPolicy::Never),
            Some(FsyncPolicy::Interval(Duration::from_millis(250))),
        ] {
            store(dir.path(), &spec(f)).unwrap();
            assert_eq!(load(dir.path(), "t"), Some(spec(f)));
        }
    }

    #[test]
    fn a_bad_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "t"), None);
        std::fs::write(dir.path().join(FILE), b"{\"partitions\": \"x\"}").unwrap();
        assert_eq!(load(dir.path(), "t"), None);
        std::fs::write(
            dir.path().join(FILE),
            br#"{"partitions": 1, "routing": "round_robin", "fsync": "sometimes"}"#,
        )
        .unwrap();
        assert_eq!(load(dir.path(), "t"), None);
    }
}
