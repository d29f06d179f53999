//! The test driver (`switchyard-driver`) against the spec's conformance tables, spoken
//! to directly over its stdin/stdout, as the reference library would be: lifecycle
//! L1-L6, L8-L10, RPC R1-R5, R8, R10, and `eventbus command` E1-E5.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchyard_codecs::{Envelope, Frame, FrameCodec, Limits, Mode};
use tokio_util::codec::Decoder;

const DRIVER: &str = env!("CARGO_BIN_EXE_switchyard-driver");

struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    frames: mpsc::Receiver<Envelope>,
    stderr: mpsc::Receiver<String>,
}

impl Driver {
    fn spawn(service: &str, kind: &str) -> Driver {
        let mut child = Command::new(DRIVER)
            .args([service, kind])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let (tx, frames) = mpsc::channel();
        std::thread::spawn(move || {
            let mut codec = FrameCodec::new(Mode::Envelope, Limits::default());
            let mut buf = BytesMut::new();
            let mut chunk = [0u8; 4096];
            loop {
                while let Ok(Some(Frame::Envelope(e))) = codec.decode(&mut buf) {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
                match out.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let (etx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            let _ = etx.send(s);
        });
        let stdin = child.stdin.take();
        Driver {
            child,
            stdin,
            frames,
            stderr,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stdin.as_mut().unwrap().write_all(bytes).unwrap();
        self.stdin.as_mut().unwrap().flush().unwrap();
    }

    fn next(&self, within: Duration) -> Option<Envelope> {
        self.frames.recv_timeout(within).ok()
    }

    fn expect(&self) -> Envelope {
        self.next(Duration::from_secs(15))
            .expect("a frame from the driver")
    }

    fn start(&mut self, options: &str) {
        self.send(
            format!(
                "command options 0 {}\n{options}command start 0 0\n",
                options.len()
            )
            .as_bytes(),
        );
        let e = self.expect();
        assert!(e.is("state", "alive"), "{e:?}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const OPTS: &str = r#"{"data":{"hello":"world"},"dynamicData":null}"#;

#[test]
fn l1_l2_l6_ping_start_stop_and_eof() {
    let mut d = Driver::spawn("operator", "conformance");
    d.send(b"command ping 0 0\n");
    assert!(d.expect().is("state", "loaded")); // L1
    d.start(OPTS); // L2
    d.send(b"command stop 0 0\n");
    assert!(d.expect().is("state", "stopped")); // L6
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "the library does not exit on stop"
    );
    d.stdin = None;
    let status = d.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let err = d.stderr.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        err.contains("CRIT") && err.contains("daemon closed channel"),
        "{err}"
    );
}

#[test]
fn l3_start_before_options_waits() {
    let mut d = Driver::spawn("operator", "conformance");
    d.send(b"command start 0 0\n");
    assert!(d.next(Duration::from_millis(300)).is_none());
    d.send(format!("command options 0 {}\n{OPTS}", OPTS.len()).as_bytes());
    assert!(d.expect().is("state", "alive"));
}

#[test]
fn l4_second_start_reload_hook_or_cold() {
    let mut d = Driver::spawn("operator", "conformance");
    d.start(OPTS);
    d.send(
        format!(
            "command options 0 {}\n{OPTS}command start 0 0\n",
            OPTS.len()
        )
        .as_bytes(),
    );
    assert!(d.expect().is("state", "alive"));
    let mut d = Driver::spawn("operator", "dummy");
    d.start(OPTS);
    d.send(
        format!(
            "command options 0 {}\n{OPTS}command start 0 0\n",
            OPTS.len()
        )
        .as_bytes(),
    );
    assert!(d.expect().is("state", "cold"));
}

#[test]
fn l5_invalid_options_never_alive_and_ping_says_loaded() {
    let mut d = Driver::spawn("operator", "conformance");
    d.send(b"command options 0 9\n{not jsoncommand start 0 0\n");
    assert!(d.next(Duration::from_millis(500)).is_none());
    d.send(b"command ping 0 0\n");
    assert!(d.expect().is("state", "loaded"));
}

#[test]
fn l8_dummy_receiver_emits_then_goes_cold() {
    let mut d = Driver::spawn("receiver", "dummy");
    d.start(r#"{"data":{"emit_after_ms":200},"dynamicData":null}"#);
    let e = d.expect();
    assert!(e.is("eventbus", "message"));
    assert!(e.labels.is_empty());
    assert_eq!(&e.payload[..], br#"{"data":["line 1","line 2"]}"#);
    assert!(d.expect().is("state", "cold"));
}

#[test]
fn l9_without_fd3_and_l10_garbage_then_ping() {
    // This process's fd 3 is not passed on by std's Command: the driver runs without it.
    let mut d = Driver::spawn("operator", "conformance");
    d.send(b"this is not an envelope\ncommand ping 0 0\n");
    assert!(d.expect().is("state", "loaded"));
    d.stdin = None;
    let err = d.stderr.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        err.contains("WARN") && err.contains("invalid message envelope"),
        "{err}"
    );
}

/// Writes one envelope to the driver.
fn frame(d: &mut Driver, channel: &str, subject: &str, labels: &[(&str, &str)], payload: &[u8]) {
    let mut e =
        Envelope::new(channel.to_string(), subject.to_string()).with_payload(payload.to_vec());
    for (k, v) in labels {
        e.labels.insert(k.to_string(), v.to_string());
    }
    let mut b = BytesMut::new();
    e.encode(&mut b).unwrap();
    d.send(&b);
}

fn call(d: &mut Driver, labels: &[(&str, &str)], payload: &[u8]) {
    frame(d, "rpc", "call", labels, payload);
}

#[test]
fn r1_to_r5_r8_r10_rpc() {
    let mut d = Driver::spawn("operator", "conformance");
    d.start(r#"{"data":{"p":":regex:^x","q":"plain"},"dynamicData":null}"#);
    // R1, byte for byte from the spec.
    d.send(b"rpc call 4 8\nrpcID 1\n7feature 8\ndriver:xmethod 4\nechocaller 12\ndriver:other{\"a\": 1}");
    let r = d.expect();
    assert!(r.is("rpc", "return"));
    assert_eq!(r.labels.len(), 2);
    assert_eq!(r.labels.get_str("rpcID"), Some("7"));
    assert_eq!(r.labels.get_str("caller"), Some("driver:other"));
    assert_eq!(&r.payload[..], b"{\"a\": 1}");
    // R2
    call(
        &mut d,
        &[("rpcID", "8"), ("method", "nosuch"), ("caller", "-")],
        b"",
    );
    let r = d.expect();
    assert_eq!(
        r.labels.get_str("error"),
        Some("runtime error: invalid memory address or nil pointer dereference")
    );
    assert!(r.payload.is_empty());
    // R3: no return at all; the next call is answered first.
    call(
        &mut d,
        &[("rpcID", "skip"), ("method", "echo"), ("caller", "-")],
        b"x",
    );
    // R4
    call(
        &mut d,
        &[("rpcID", "9"), ("method", "fail"), ("caller", "-")],
        b"",
    );
    let r = d.expect();
    assert_eq!(r.labels.get_str("rpcID"), Some("9"));
    assert_eq!(r.labels.get_str("error"), Some("conformance failure"));
    // R5 with a `timeout` label: about 2 s, not 4.
    let t = Instant::now();
    call(
        &mut d,
        &[
            ("rpcID", "10"),
            ("method", "sleep"),
            ("caller", "-"),
            ("timeout", "1s"),
        ],
        br#"{"seconds":3}"#,
    );
    let r = d.expect();
    assert_eq!(r.labels.get_str("error"), Some("timeout"));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    // R8: raw in, raw out.
    call(
        &mut d,
        &[("rpcID", "11"), ("method", "decrypt"), ("caller", "-")],
        b"world",
    );
    assert_eq!(&d.expect().payload[..], b"decrypted:world");
    // R10: a compiled regex echoes as {}.
    call(
        &mut d,
        &[("rpcID", "12"), ("method", "options"), ("caller", "-")],
        b"",
    );
    let v: serde_json::Value = serde_json::from_slice(&d.expect().payload).unwrap();
    assert_eq!(v["data"]["p"], serde_json::json!({}));
    assert_eq!(v["data"]["q"], "plain");
}

fn command(d: &mut Driver, labels: &[(&str, &str)], payload: &[u8]) {
    frame(d, "eventbus", "command", labels, payload);
}

#[test]
fn e1_to_e5_commands() {
    let mut d = Driver::spawn("operator", "conformance");
    d.start(OPTS);
    // E1, byte for byte from the spec.
    d.send(b"eventbus command 3 10\nsessionID 2\ns1method 4\nechoretry 1\n1{\"k\": \"v\"}");
    let r = d.expect();
    assert!(r.is("eventbus", "return"));
    assert_eq!(r.labels.get_str("sessionID"), Some("s1"));
    assert_eq!(r.labels.get_str("method"), Some("echo"));
    assert_eq!(r.labels.get_str("status"), Some("success"));
    assert_eq!(r.labels.get("retry"), None);
    assert_eq!(&r.payload[..], b"{\"k\": \"v\"}");
    // E2: no sessionID, no return; E3 is answered next.
    command(&mut d, &[("method", "echo")], b"{}");
    command(&mut d, &[("method", "nosuch"), ("sessionID", "s3")], b"");
    let r = d.expect();
    assert_eq!(r.labels.get_str("sessionID"), Some("s3"));
    assert_eq!(r.labels.get_str("status"), Some("error"));
    assert_eq!(
        r.labels.get_str("reason"),
        Some("[operator] cmd not defined: nosuch")
    );
    // E4: three attempts, 100 ms then 200 ms apart.
    let t = Instant::now();
    command(
        &mut d,
        &[
            ("method", "fail"),
            ("sessionID", "s4"),
            ("retry", "2"),
            ("backoff_ms", "100"),
        ],
        b"",
    );
    let r = d.expect();
    assert_eq!(r.labels.get_str("status"), Some("failure"));
    assert_eq!(r.labels.get_str("reason"), Some("conformance failure"));
    assert!(t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_millis(1500));
    // E5
    let t = Instant::now();
    command(
        &mut d,
        &[("method", "sleep"), ("sessionID", "s5"), ("timeout", "1")],
        br#"{"seconds":3}"#,
    );
    let r = d.expect();
    assert_eq!(r.labels.get_str("status"), Some("error"));
    assert_eq!(r.labels.get_str("reason"), Some("timeout"));
    assert!(t.elapsed() < Duration::from_millis(2500));
}
