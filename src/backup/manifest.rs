//! `backup.json`, the manifest a backup writes last: which topics and partitions it
//! holds, from which offset to which, how many records, and each group's committed
//! offsets. A backup dir without it is an unfinished backup.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::BackupError;

/// The largest `backup.json` read: room for about 600 k partitions.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// The manifest's file name in a backup dir.
pub const MANIFEST: &str = "backup.json";
/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The switchyard version that wrote it.
    pub version: String,
    /// When the offsets were snapshotted and when the backup finished, ms since the epoch.
    pub started_ms: u64,
    pub finished_ms: u64,
    /// The broker address as the user gave it.
    pub broker: String,
    pub topics: Vec<TopicEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicEntry {
    pub name: String,
    /// One per partition, in partition order.
    pub partitions: Vec<PartitionEntry>,
    /// Group, then partition, then the committed offset (the next one to read).
    #[serde(default)]
    pub groups: BTreeMap<String, BTreeMap<u32, u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionEntry {
    pub partition: u32,
    /// The first offset copied (the partition's first retained one).
    pub first: u64,
    /// One past the last offset copied: the synced high watermark at the snapshot.
    pub end: u64,
    pub records: u64,
}

impl Manifest {
    pub fn records(&self) -> u64 {
        self.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records)
            .sum()
    }

    pub fn partitions(&self) -> usize {
        self.topics.iter().map(|t| t.partitions.len()).sum()
    }

    /// Parses and checks a manifest: the format, and per partition `records = end -
    /// first` (a backup copies every offset of its range), partitions numbered 0..n.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.format != FORMAT {
            return Err(format!(
                "format {} (this switchyard reads format {FORMAT})",
                m.format
            ));
        }
        for t in &m.topics {
            if !switchyard_actors::topic::registry::valid_name(&t.name) {
                return Err(format!("`{}` is not a topic name", t.name));
            }
            for (i, p) in t.partitions.iter().enumerate() {
                if p.partition as usize != i {
                    return Err(format!("topic {}: partition {i} missing", t.name));
                }
                if p.end < p.first || p.end - p.first != p.records {
                    return Err(format!(
                        "{}/{}: {} records cannot span offsets {}..{}",
                        t.name, p.partition, p.records, p.first, p.end
                    ));
                }
            }
            if t.partitions.is_empty() {
                return Err(format!("topic {} has no partitions", t.name));
            }
        }
        Ok(m)
    }

    /// Reads `dir/backup.json`: a dir without one is not a finished backup.
    /// A manifest is about 100 bytes a partition; one past [`MAX_MANIFEST_BYTES`] is
    /// refused, not read whole.
    pub fn read(dir: &Path) -> Result<Manifest, BackupError> {
        use std::io::Read as _;
        let path = dir.join(MANIFEST);
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes));
        match read {
            Ok(n) if n as u64 > MAX_MANIFEST_BYTES => {
                return Err(BackupError::BadManifest {
                    path,
                    why: format!("longer than {MAX_MANIFEST_BYTES} bytes"),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::NotABackup {
                    dir: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(BackupError::io(&path, e)),
        };
        Manifest::parse(&bytes).map_err(|why| BackupError::BadManifest {
            path: path.clone(),
            why,
        })
    }

    /// Writes `dir/backup.json` so that it is there whole or not at all: written
    /// aside, synced, renamed, and the dir synced.
    pub fn write(&self, dir: &Path) -> Result<(), BackupError> {
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(|e| BackupError::BadManifest {
            path: tmp.clone(),
            why: e.to_string(),
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| BackupError::io(&tmp, e))?;
        f.write_all(&json)
            .and_then(|()| f.sync_all())
            .map_err(|e| BackupError::io(&tmp, e))?;
        let path = dir.join(MANIFEST);
        std::fs::rename(&tmp, &path).map_err(|e| BackupError::io(&path, e))?;
        super::sync_dir(dir)
    }

    /// `t/0 up to 1200, t/1 up to 980`: where each partition's copy ends.
    pub fn offsets_text(&self) -> String {
        let parts: Vec<String> = self
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| format!("{}/{} {}..{}", t.name, p.partition, p.first, p.end))
            })
            .collect();
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT,
            version: "0.1.0".into(),
            started_ms: 1,
            finished_ms: 2,
            broker: "127.0.0.1:7400".into(),
            topics: vec![TopicEntry {
                name: "orders".into(),
                partitions: vec![
                    PartitionEntry {
                        partition: 0,
                        first: 0,
                        end: 10,
                        records: 10,
                    },
                    PartitionEntry {
                        partition: 1,
                        first: 5,
                        end: 5,
                        records: 0,
                    },
                ],
                groups: BTreeMap::from([("g".into(), BTreeMap::from([(0, 7)]))]),
            }],
        }
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Manifest::read(dir.path()),
            Err(BackupError::NotABackup { .. })
        ));
        sample().write(dir.path()).unwrap();
        let back = Manifest::read(dir.path()).unwrap();
        assert_eq!(back, sample());
        assert_eq!((back.records(), back.partitions()), (10, 2));
        assert_eq!(back.offsets_text(), "orders/0 0..10, orders/1 5..5");
        assert!(!dir.path().join("backup.json.tmp").exists());
    }

    #[test]
    fn refuses_what_does_not_add_up() {
        let text = |m: &Manifest| serde_json::to_vec(m).unwrap();
        let mut m = sample();
        m.format = 2;
        assert!(Manifest::parse(&text(&m)).unwrap_err().contains("format 2"));
        let mut m = sample();
        m.topics[0].partitions[0].records = 9;
        assert!(Manifest::parse(&text(&m))
            .unwrap_err()
            .contains("9 records cannot span offsets 0..10"));
        let mut m = sample();
        m.topics[0].partitions.remove(0);
        assert!(Manifest::parse(&text(&m))
            .unwrap_err()
            .contains("partition 0 missing"));
        let mut m = sample();
        m.topics[0].name = "../etc".into();
        assert!(Manifest::parse(&text(&m))
            .unwrap_err()
            .contains("not a topic name"));
        assert!(Manifest::parse(b"{\"format\": 1}").is_err());
        assert!(Manifest::parse(&text(&sample())).is_ok());
    }

    #[test]
    fn a_manifest_past_the_bound_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join(MANIFEST)).unwrap();
        f.set_len(MAX_MANIFEST_BYTES + 1).unwrap();
        let why = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(why.contains("longer than 67108864 bytes"), "{why}");
        std::fs::write(dir.path().join(MANIFEST), b"\xff{not json").unwrap();
        assert!(matches!(
            Manifest::read(dir.path()),
            Err(BackupError::BadManifest { .. })
        ));
    }
}
