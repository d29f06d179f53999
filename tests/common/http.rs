//! A small HTTP/1.1 client for the gateway tests (one request per connection).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn head(method: &str, path: &str, headers: &[(&str, &str)], len: usize) -> String {
    let mut h = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {len}\r\n");
    for (k, v) in headers {
        h += &format!("{k}: {v}\r\n");
    }
    h + "\r\n"
}

/// Sends one request and reads the whole answer (de-chunked).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head(method, path, headers, body.len()).as_bytes())
        .await
        .unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .unwrap();
    parse(&raw)
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], b"").await
}

pub async fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Reply {
    let b = body.to_string();
    request(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        b.as_bytes(),
    )
    .await
}

pub fn parse(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 4 + n..];
    }
    out
}

/// An open server-sent-events stream: yields each event's `data` line.
pub struct Sse {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Sse {
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head("GET", path, headers, 0).as_bytes())
            .await
            .unwrap();
        let mut sse = Sse { s, buf: Vec::new() };
        let end = loop {
            if let Some(e) = sse.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break e;
            }
            assert!(sse.fill().await, "stream closed before its headers");
        };
        let head = String::from_utf8_lossy(&sse.buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_lowercase()
                .contains("content-type: text/event-stream"),
            "{head}"
        );
        sse.buf.drain(..end + 4);
        sse
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next event's data, or `None` when the stream ends (comments are skipped).
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(d) = self.next_event().await?.data {
                return Some(d);
            }
        }
    }

    /// The next event block as it came (a keep-alive is a block with only a comment),
    /// or `None` when the stream ends.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                let mut e = Event::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        e.comments.push(c.trim().to_string());
                    } else if let Some((k, v)) = line.split_once(": ") {
                        match k {
                            "id" => e.id = Some(v.to_string()),
                            "data" => e.data = Some(v.to_string()),
                            _ => {}
                        }
                    }
                }
                return Some(e);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next record event as (partition, offset, value, id).
    pub async fn record(&mut self) -> Option<(u32, u64, String, String)> {
        loop {
            let e = self.next_event().await?;
            if let Some(d) = e.data {
                let v: serde_json::Value = serde_json::from_str(&d).unwrap();
                return Some((
                    v["partition"].as_u64().unwrap() as u32,
                    v["offset"].as_u64().unwrap(),
                    v["value"].as_str().unwrap_or_default().to_string(),
                    e.id.unwrap_or_default(),
                ));
            }
        }
    }
}

/// One server-sent event block.
#[derive(Debug, Default)]
pub struct Event {
    pub id: Option<String>,
    pub data: Option<String>,
    pub comments: Vec<String>,
}
