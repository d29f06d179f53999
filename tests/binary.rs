//! The built `switchyard` binary: `check-config` errors, and a clean run on the
//! shipped config stopped by SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn check_config(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_config_unknown_key_names_key_and_line() {
    let (code, _, err) = check_config("[broker]\nbind = \"127.0.0.1:7400\"\nmax_conections = 10\n");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "config.toml:3:1: key `broker.max_conections`: unknown field `max_conections`"
        ),
        "{err}"
    );
    assert!(err.contains("expected one of"), "{err}");
}

#[test]
fn check_config_bad_value_names_key_and_line() {
    let (code, _, err) = check_config("# comment\n[supervisor]\n\nmax_restarts = -1\n");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("config.toml:4:16: key `supervisor.max_restarts`"),
        "{err}"
    );
    assert!(err.contains("max_restarts = -1"), "shows the line: {err}");
}

#[test]
fn check_config_refuses_a_driver_command_that_cannot_be_run() {
    let (code, _, err) = check_config(
        "[[driver]]\nname = \"a\"\ncommand = \"/bin/sh\"\n\n\
         [[driver]]\nname = \"b\"\ncommand = \"./drivers/nope.sh\"\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("config.toml:7:1: key `driver[1].command`: expected an executable file: cannot run `./drivers/nope.sh` (relative to the working directory "),
        "{err}"
    );
    assert!(
        err.contains("command = \"./drivers/nope.sh\""),
        "shows the line: {err}"
    );
    let (code, _, err) = check_config("[[driver]]\nname = \"a\"\ncommand = \"nope-driver\"\n");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("key `driver[0].command`: expected an executable file: `nope-driver` is not an executable file on PATH"),
        "{err}"
    );
}

#[test]
fn check_config_takes_host_names_in_binds() {
    let (code, out, err) = check_config(
        "[broker]\nbind = \"localhost:7400\"\n[gateway]\nhttp_bind = \"localhost:7480\"\n",
    );
    assert_eq!(code, 0, "{err}");
    // The effective config has the address the port is bound to.
    assert!(out.contains("bind = \"127.0.0.1:7400\""), "{out}");
    assert!(out.contains("http_bind = \"127.0.0.1:7480\""), "{out}");
    let (code, _, err) = check_config("[maze]\nclient_bind = \"no-such-host.invalid:9099\"\n");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "config.toml:2:15: key `maze.client_bind`: cannot resolve `no-such-host.invalid:9099`"
        ),
        "{err}"
    );
}

#[test]
fn check_config_prints_the_effective_config() {
    let (code, out, err) = check_config("[broker]\nidle_timeout_ms = 2500\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("idle_timeout_ms = 2500"), "{out}");
    assert!(out.contains("grace_ms = 5000"), "defaults filled in: {out}");
    assert!(out.contains("slow_consumer = \"disconnect\""), "{out}");
}

#[test]
fn a_missing_config_file_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let out = Command::new(BIN).arg("-c").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("cannot read").count(), 1, "{err}");
    assert!(
        err.contains(&format!("error: {}: cannot read: ", path.display())),
        "{err}"
    );
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Runs from an empty directory, so the embedded copy of the shipped config is used
/// (127.0.0.1:7400).
#[test]
fn runs_on_the_shipped_config_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("-v")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    let wait_for = |needle: &str, log: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !log.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    log.push_str(&l);
                    log.push('\n');
                }
                Err(_) => panic!("no `{needle}` in the log:\n{log}"),
            }
        }
    };
    wait_for("broker started", &mut log);
    assert!(log.contains("using the shipped config"), "{log}");
    assert!(
        log.contains("actor started path=root/listener:broker"),
        "-v shows debug: {log}"
    );

    let mut c = TcpStream::connect("127.0.0.1:7400").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"command ping 0 0\n").unwrap();
    let mut reply = [0u8; 16];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"state alive 0 0\n");

    // The shipped config's gateway answers health on 7480.
    let mut h = TcpStream::connect("127.0.0.1:7480").unwrap();
    h.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    h.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    h.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("{\"status\":\"serving\"}"), "{answer}");

    signal(child.id(), "USR1");
    wait_for("actors, on SIGUSR1):", &mut log);
    wait_for("├── router:maze [next 1", &mut log);
    wait_for("└── connection:127.0.0.1:", &mut log);

    signal(child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let mut rest = Vec::new();
    assert_eq!(
        c.read_to_end(&mut rest).unwrap(),
        0,
        "the connection was closed cleanly"
    );
    wait_for("shutdown complete", &mut log);
}
