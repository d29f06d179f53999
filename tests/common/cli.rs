//! The built `switchyard` binary as a client of an in-process broker: one-shot runs,
//! and long-running commands (`sub`, `events`) whose output is collected as it comes.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::{Broker, Config};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// Runs the binary to its end, feeding it `stdin`, without blocking the broker's thread.
pub async fn run(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command ends")
        .unwrap()
}

/// Runs the binary and expects success; its stdout.
pub async fn ok(args: &[&str], stdin: &[u8]) -> (String, String) {
    let out = run(args, stdin).await;
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?} failed: {e}");
    (o, e)
}

/// A command that runs on, its stdout and stderr gathered by threads.
pub struct Running {
    child: std::process::Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

fn gather(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                return;
            }
            b.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

impl Running {
    pub fn spawn(args: &[&str]) -> Running {
        let mut child = std::process::Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = gather(child.stdout.take().unwrap());
        let err = gather(child.stderr.take().unwrap());
        Running { child, out, err }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Waits up to 20 s for `n` lines of output.
    pub async fn lines(&self, n: usize) -> Vec<String> {
        for _ in 0..2000 {
            let text = self.stdout();
            if text.lines().count() >= n {
                return text.lines().map(str::to_string).collect();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "no {n} lines; stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
    }

    /// Waits up to 20 s for the process to exit by itself.
    pub async fn exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..2000 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("still running; stderr:\n{}", self.stderr());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A broker config on `bind`, storage in `dir`, `extra` appended.
pub fn config_at(dir: &Path, bind: &str, extra: &str) -> Config {
    Config::parse(
        &format!(
            "[broker]\nbind = \"{bind}\"\n[storage]\ndir = \"{}\"\n{extra}\n[shutdown]\ngrace_ms = 1000\n",
            dir.display()
        ),
        "test",
    )
    .unwrap()
}

/// A broker on a free port, storage in `dir`.
pub async fn broker(dir: &Path, extra: &str) -> Broker {
    switchyard::start(&config_at(dir, "127.0.0.1:0", extra))
        .await
        .unwrap()
}

/// Stops `b` and starts a new broker on the same port and data dir.
pub async fn restart(b: Broker, dir: &Path, extra: &str) -> Broker {
    let addr = b.local_addr();
    b.run_until(async {}).await;
    switchyard::start(&config_at(dir, &addr.to_string(), extra))
        .await
        .unwrap()
}

/// `switchyard topics create ARGS --broker ADDR`, expected to succeed; its stdout.
#[allow(dead_code)]
pub async fn create(addr: &str, args: &[&str]) -> String {
    let mut all = vec!["topics", "create"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--broker", addr]);
    ok(&all, b"").await.0
}
