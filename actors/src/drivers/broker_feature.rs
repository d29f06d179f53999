//! The feature `broker`: what the broker itself answers over RPC. `ping`, `tree`,
//! `drivers` and `services` at once; `publish` and `fetch` through the topic registry, so drivers (a chat
//! plugin keeping state, say) can append to and replay topics over their own pipes.

use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use switchyard_codecs::Labels;

use super::host::DriverHost;
use crate::storage::log::Append;
use crate::topic::registry::{FetchRecords, Publish};

#[derive(Debug, Deserialize)]
struct PublishParams {
    topic: String,
    value: String,
    key: Option<String>,
}

fn default_max() -> usize {
    1 << 20
}

#[derive(Debug, Deserialize)]
struct FetchParams {
    topic: String,
    #[serde(default)]
    partition: u32,
    #[serde(default)]
    from: u64,
    #[serde(default = "default_max")]
    max_bytes: usize,
    /// Records at most; none: as many as `max_bytes` holds.
    max: Option<usize>,
}

type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, String>>>>;

/// A method's answer: known at once (answered in the same turn, with no future for
/// the host to poll), or later (topics).
pub(super) enum Answer {
    Now(Result<Bytes, String>),
    Later(Pending),
}

impl DriverHost {
    /// Runs a method of the feature `broker`.
    pub(super) fn broker_method(&self, method: &str, params: &Bytes) -> Answer {
        let sync = |r: Result<Vec<u8>, serde_json::Error>| -> Answer {
            Answer::Now(r.map(Bytes::from).map_err(|e| e.to_string()))
        };
        match method {
            "ping" => Answer::Now(Ok(Bytes::from_static(b"pong"))),
            "tree" => sync(serde_json::to_vec(&self.tree.snapshot())),
            "drivers" => sync(serde_json::to_vec(
                &self
                    .drivers
                    .values()
                    .map(|s| s.status())
                    .collect::<Vec<_>>(),
            )),
            "services" => sync(serde_json::to_vec(&self.service_table.view())),
            "publish" | "fetch" => {
                let reg = self
                    .topics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let Some(reg) = reg else {
                    return Answer::Now(Err("topics are not running".to_string()));
                };
                Answer::Later(if method == "publish" {
                    publish(reg, params.clone())
                } else {
                    fetch(reg, params.clone())
                })
            }
            other => Answer::Now(Err(format!(
                "broker has no method {other}: ping, tree, drivers, services, publish, fetch"
            ))),
        }
    }
}

fn publish(reg: Addr<crate::topic::TopicRegistry>, params: Bytes) -> Pending {
    Box::pin(async move {
        let p: PublishParams = serde_json::from_slice(&params)
            .map_err(|e| format!("publish wants {{\"topic\", \"value\", \"key\"?}}: {e}"))?;
        let key = p.key.map(Bytes::from);
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let done = reg
            .send(Publish {
                topic: p.topic,
                key: key.clone(),
                partition: None,
                records: vec![Append {
                    timestamp_ms,
                    key,
                    labels: Labels::new(),
                    value: Bytes::from(p.value),
                }],
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let out = json!({"partition": done.partition, "offset": done.first_offset});
        Ok(Bytes::from(out.to_string()))
    })
}

fn fetch(reg: Addr<crate::topic::TopicRegistry>, params: Bytes) -> Pending {
    Box::pin(async move {
        let p: FetchParams = serde_json::from_slice(&params).map_err(|e| {
            format!("fetch wants {{\"topic\", \"partition\"?, \"from\"?, \"max\"?, \"max_bytes\"?}}: {e}")
        })?;
        let fetched = reg
            .send(FetchRecords {
                topic: p.topic,
                partition: p.partition,
                from: p.from,
                max_bytes: Some(p.max_bytes),
                max_records: p.max,
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let list: Vec<_> = fetched
            .records
            .iter()
            .map(|r| {
                json!({
                    "offset": r.offset,
                    "timestamp_ms": r.timestamp_ms,
                    "key": r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                    "value": String::from_utf8_lossy(&r.value),
                })
            })
            .collect();
        let mut out = json!({"records": list, "next": fetched.next});
        if let Some(cap) = fetched.capped_to {
            // Said, so a caller that asked for more knows why it got less.
            out["capped_to"] = json!(cap);
        }
        Ok(Bytes::from(out.to_string()))
    })
}
