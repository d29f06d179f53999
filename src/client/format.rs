//! How `switchyard sub` prints a record: a kcat-like `--format`, or `--json`.

use std::io::Write;

use switchyard_actors::topic::deliver_batch::DeliveredItem;

/// One piece of a `--format`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Timestamp,
    Labels,
    Value,
    ValueSize,
}

/// A `--format` string, parsed once: `%t` topic, `%p` partition, `%o` offset, `%k`
/// key (empty when none), `%T` timestamp (ms), `%h` labels (`name=value`
/// comma-separated), `%s` value, `%S` value size in bytes, `%%` a `%`; `\n`, `\t`,
/// `\r` and `\\` escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format(Vec<Piece>);

/// Today's output, `<partition> <offset> <value>`.
pub const DEFAULT_FORMAT: &str = "%p %o %s\\n";

impl Default for Format {
    fn default() -> Format {
        DEFAULT_FORMAT.parse().unwrap_or(Format(vec![Piece::Value]))
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            let piece = match c {
                '%' => match chars.next() {
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('k') => Piece::Key,
                    Some('T') => Piece::Timestamp,
                    Some('h') => Piece::Labels,
                    Some('s') => Piece::Value,
                    Some('S') => Piece::ValueSize,
                    Some('%') => {
                        text.push(b'%');
                        continue;
                    }
                    Some(o) => {
                        return Err(format!(
                            "unknown placeholder %{o} (%t %p %o %k %T %h %s %S %%)"
                        ))
                    }
                    None => return Err("a lone % at the end (write %% for a %)".into()),
                },
                '\\' => {
                    text.push(match chars.next() {
                        Some('n') => b'\n',
                        Some('t') => b'\t',
                        Some('r') => b'\r',
                        Some('\\') => b'\\',
                        Some(o) => return Err(format!("unknown escape \\{o} (\\n \\t \\r \\\\)")),
                        None => return Err("a lone \\ at the end (write \\\\ for a \\)".into()),
                    });
                    continue;
                }
                c => {
                    let mut b = [0u8; 4];
                    text.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                    continue;
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Format(pieces))
    }
}

impl Format {
    /// Appends `r` of `topic`/`partition` as the format says.
    pub fn render(&self, out: &mut Vec<u8>, topic: &str, partition: u32, r: &DeliveredItem) {
        let mut n = itoa::Buffer::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Topic => out.extend_from_slice(topic.as_bytes()),
                Piece::Partition => out.extend_from_slice(n.format(partition).as_bytes()),
                Piece::Offset => out.extend_from_slice(n.format(r.offset).as_bytes()),
                Piece::Key => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                Piece::Timestamp => out.extend_from_slice(n.format(r.timestamp_ms).as_bytes()),
                Piece::Labels => {
                    for (i, (k, v)) in r.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(k.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(v);
                    }
                }
                Piece::Value => out.extend_from_slice(&r.value),
                Piece::ValueSize => out.extend_from_slice(n.format(r.value.len()).as_bytes()),
            }
        }
    }
}

/// Appends `bytes` as a JSON string value under `name`, or, when they are not UTF-8,
/// as base64 under `<name>_base64`.
fn json_bytes(out: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => json_field(out, name, s),
        Err(_) => json_field(
            out,
            &format!("{name}_base64"),
            &switchyard_actors::gateway::base64::encode(bytes),
        ),
    }
}

fn json_field(out: &mut Vec<u8>, name: &str, s: &str) {
    json_str(out, name);
    out.push(b':');
    json_str(out, s);
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends `r` as one JSON object and a newline: `topic`, `partition`, `offset`,
/// `timestamp`, `key` (null when none; `key_base64` instead when not UTF-8), `labels`
/// (values as UTF-8, invalid bytes replaced), `value` (`value_base64` instead when not
/// UTF-8). Written by hand to keep this field order.
pub fn render_json(out: &mut Vec<u8>, topic: &str, partition: u32, r: &DeliveredItem) {
    out.push(b'{');
    json_field(out, "topic", topic);
    let _ = write!(
        out,
        ",\"partition\":{partition},\"offset\":{},\"timestamp\":{},",
        r.offset, r.timestamp_ms
    );
    match &r.key {
        Some(k) => json_bytes(out, "key", k),
        None => out.extend_from_slice(b"\"key\":null"),
    }
    out.extend_from_slice(b",\"labels\":{");
    for (i, (k, v)) in r.labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_field(out, k, &String::from_utf8_lossy(v));
    }
    out.extend_from_slice(b"},");
    json_bytes(out, "value", &r.value);
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use switchyard_codecs::Labels;

    fn item(key: Option<&'static [u8]>, value: &'static [u8]) -> DeliveredItem {
        let mut labels = Labels::new();
        labels.insert("trace", "x\"y");
        labels.insert("env", "prod");
        DeliveredItem {
            offset: 7,
            timestamp_ms: 1700000000000,
            key: key.map(Bytes::from_static),
            labels,
            value: Bytes::from_static(value),
        }
    }

    fn render(f: &str, r: &DeliveredItem) -> String {
        let mut out = Vec::new();
        f.parse::<Format>().unwrap().render(&mut out, "t", 3, r);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn placeholders_and_escapes() {
        let r = item(Some(b"k1"), b"hello");
        assert_eq!(render(DEFAULT_FORMAT, &r), "3 7 hello\n");
        assert_eq!(
            render("%t/%p@%o %k=%s (%S B, %T) [%h] 100%%\\t\\\\\\r", &r),
            "t/3@7 k1=hello (5 B, 1700000000000) [trace=x\"y,env=prod] 100%\t\\\r"
        );
        assert_eq!(render("[%k]", &item(None, b"")), "[]");
        assert_eq!(render("é%s", &r), "éhello");
        for bad in ["%x", "%", "\\q", "\\"] {
            assert!(bad.parse::<Format>().is_err(), "{bad}");
        }
    }

    #[test]
    fn json_lines() {
        let mut out = Vec::new();
        render_json(&mut out, "t", 3, &item(Some(b"k1"), b"hi \"there\""));
        render_json(&mut out, "t", 3, &item(None, b"\xff\x00"));
        render_json(&mut out, "t", 3, &item(Some(b"\xfe"), b"v"));
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"topic": "t", "partition": 3, "offset": 7,
                "timestamp": 1700000000000u64, "key": "k1",
                "labels": {"trace": "x\"y", "env": "prod"}, "value": "hi \"there\""})
        );
        assert_eq!(lines[1]["key"], serde_json::Value::Null);
        assert_eq!(lines[1]["value_base64"], "/wA=");
        assert!(lines[1].get("value").is_none());
        assert_eq!(lines[2]["key_base64"], "/g==");
        assert!(lines[2].get("key").is_none());
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("{\"topic\":\"t\",\"partition\":3,"));
    }
}
