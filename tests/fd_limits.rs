//! File descriptors (issue 12): the built binary raises its soft `RLIMIT_NOFILE` to the
//! hard limit and says so, and a listener that runs out of descriptors backs off, logs
//! at most once a second, and serves again once descriptors are free. The broker runs
//! under `prlimit`; the tests are skipped, with a message, where it is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// The broker under `prlimit --nofile=soft:hard`, its address, and its log as it grows.
struct Broker {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn lines_with(&self, what: &str) -> usize {
        self.log().lines().filter(|l| l.contains(what)).count()
    }
}

fn have_prlimit() -> bool {
    Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn spawn(dir: &Path, soft: u64, hard: u64, broker_extra: &str) -> Broker {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nbind = \"127.0.0.1:0\"\n{broker_extra}\n[storage]\ndir = \"{}\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={soft}:{hard}"))
        .args([BIN, "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let log = Arc::new(Mutex::new(String::new()));
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the broker exited:\n{}",
            log.lock().unwrap()
        );
        log.lock().unwrap().push_str(&line);
        if let Some(rest) = line.split("listening listener=broker addr=").nth(1) {
            break rest.trim().to_string();
        }
    };
    // Keep reading its log, so it never blocks on a full pipe.
    let sink = log.clone();
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    Broker { child, addr, log }
}

fn ping(addr: &str) -> std::io::Result<()> {
    let mut c = TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    c.write_all(b"command ping 0 0\n")?;
    let mut got = [0u8; 16];
    c.read_exact(&mut got)?;
    assert_eq!(&got, b"state alive 0 0\n");
    Ok(())
}

#[test]
fn the_soft_fd_limit_is_raised_to_the_hard_limit_and_logged() {
    if !have_prlimit() {
        eprintln!("skipped: prlimit is not installed");
        return;
    }
    let (_, hard_here) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let hard = hard_here.min(4096);
    let dir = tempfile::tempdir().unwrap();
    let b = spawn(dir.path(), 256, hard, "");
    let log = b.log();
    let line = log
        .lines()
        .find(|l| l.contains("file descriptor limit (RLIMIT_NOFILE)"))
        .unwrap_or_else(|| panic!("no fd limit line in\n{log}"));
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains(&format!("soft={hard} hard={hard}")), "{line}");
}

#[test]
fn a_listener_out_of_descriptors_backs_off_and_serves_again() {
    if !have_prlimit() {
        eprintln!("skipped: prlimit is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 64 descriptors: a few dozen connections use up what start-up left.
    let mut b = spawn(
        dir.path(),
        64,
        64,
        "max_connections_per_ip = 1000\nfirst_frame_timeout_ms = 120000",
    );
    ping(&b.addr).unwrap();
    // Connect until the broker can accept no more: the kernel still completes the
    // handshakes (they wait in the backlog), the broker's accept fails with EMFILE.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.lines_with("accept failed") == 0 {
        assert!(
            Instant::now() < deadline,
            "accept never failed:\n{}",
            b.log()
        );
        if held.len() < 200 {
            held.push(TcpStream::connect(&b.addr).unwrap());
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Out of descriptors for a while: it keeps retrying, but writes one warning a
    // second at most (it used to write ten).
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let secs = started.elapsed().as_secs();
    let lines = b.lines_with("accept failed");
    assert!(
        lines as u64 <= secs + 2,
        "{lines} accept warnings in {secs} s:\n{}",
        b.log()
    );
    assert!(b.child.try_wait().unwrap().is_none(), "the broker died");
    // Descriptors free again: the peers that waited are taken, and it serves.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ping(&b.addr) {
            Ok(()) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "no answer: {e}\n{}", b.log());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    // A burst that ended between two warnings is accounted for.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.log().contains("accept failed, backing off (repeats)") {
        assert!(Instant::now() < deadline, "no repeats line:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}
