//! Reloading the driver set from the config file: hot (options), cold (service or
//! args), removed, added, a dummy without a Reload hook (cold, exactly once), rules
//! changed, and a config that does not validate (rejected, nothing changes). Also
//! SIGHUP through `switchyard reload` against the built binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::drivers::*;
use common::Log;
use serde_json::Value;
use switchyard_actors::drivers::DriverState;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn set(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, config_text(&dir.join("data"), body)).unwrap();
    path
}

#[actix::test]
async fn reload_applies_each_kind_of_change() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let before = driver("hot", "conformance", "[driver.options]\nv = 1")
        + &driver("cold", "conformance", "")
        + &driver("dummy", "dummy", "[driver.options]\nv = 1")
        + &driver("removed", "conformance", "");
    let path = set(dir.path(), &before);
    let (config, _) = switchyard::Config::load(Some(&path)).unwrap();
    let mut b = switchyard::start(&config)
        .await
        .unwrap()
        .with_config_path(path.clone());
    let mut pids = std::collections::HashMap::new();
    for n in ["hot", "cold", "dummy", "removed"] {
        pids.insert(n, wait_alive(&b, n).await.pid.unwrap());
    }
    let after = driver("hot", "conformance", "[driver.options]\nv = 2")
        + &driver("cold", "conformance", "service = \"receiver\"")
        + &driver("dummy", "dummy", "[driver.options]\nv = 2")
        + &driver("added", "conformance", "");
    set(dir.path(), &after);
    let summary = b.reload().await.unwrap();
    assert_eq!(summary.hot, vec!["dummy".to_string(), "hot".to_string()]);
    assert_eq!(summary.cold, vec!["cold".to_string()]);
    assert_eq!(summary.stopped, vec!["removed".to_string()]);
    assert_eq!(summary.started, vec!["added".to_string()]);
    // Hot: the same process, with the new options.
    let hot = wait_driver(&b, "hot", 5, |s| s.state == DriverState::Alive).await;
    assert_eq!(hot.pid, Some(pids["hot"]));
    let opts: Value = serde_json::from_slice(
        &b.call("driver:hot", "options", Bytes::new(), None)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(opts["data"]["v"], 2);
    // Cold: a new process with the new service.
    let cold = wait_driver(&b, "cold", 5, |s| {
        s.state == DriverState::Alive && s.starts == 2
    })
    .await;
    assert_ne!(cold.pid, Some(pids["cold"]));
    assert!(gone(pids["cold"]).await);
    // The dummy has no Reload hook: it answers `cold` and is restarted exactly once.
    let d = wait_driver(&b, "dummy", 5, |s| {
        s.state == DriverState::Alive && s.starts == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let d2 = wait_alive(&b, "dummy").await;
    assert_eq!((d2.starts, d2.pid), (2, d.pid));
    // Removed: stopped, its process gone. Added: running.
    assert!(gone(pids["removed"]).await);
    assert!(b.drivers().await.iter().all(|s| s.name != "removed"));
    wait_alive(&b, "added").await;
    log.wait_for(&["drivers reloaded"]).await;

    // A file that does not validate is rejected; the running set stays.
    std::fs::write(
        &path,
        "[[driver]]\nname = \"x\"\ncommand = \"/bin/true\"\ncolour = 1\n",
    )
    .unwrap();
    let err = b.reload().await.unwrap_err();
    assert!(err.contains("colour"), "{err}");
    log.wait_for(&["config rejected"]).await;
    let names: Vec<String> = b.drivers().await.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["added", "cold", "dummy", "hot"]);
    b.run_until(async {}).await;
}

/// The warning about changes that wait for a restart names each changed key, and
/// never a value (a password hash is one).
#[actix::test]
async fn reload_names_the_keys_that_wait_for_a_restart() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let users = |b: &str| {
        format!(
            "[auth]\n[[auth.user]]\nname = \"a\"\npassword_hash = \"{}\"\n\
             [[auth.user]]\nname = \"b\"\npassword_hash = \"{b}\"\n",
            common::auth::hash("pa")
        )
    };
    let path = set(dir.path(), &users(&common::auth::hash("old")));
    let (config, _) = switchyard::Config::load(Some(&path)).unwrap();
    let mut b = switchyard::start(&config)
        .await
        .unwrap()
        .with_config_path(path.clone());
    let new_hash = common::auth::hash("new");
    let text = config_text(&dir.path().join("data"), &users(&new_hash))
        .replace("[broker]\n", "[broker]\nmax_connections = 10\n");
    std::fs::write(&path, text).unwrap();
    b.reload().await.unwrap();
    let line = log.wait_for(&["take effect at the next start"]).await;
    // User a's hash is made afresh too (a new salt): it counts as changed.
    assert!(
        line.contains(
            "keys=auth.user[0].password_hash, auth.user[1].password_hash, broker.max_connections"
        ),
        "{line}"
    );
    assert!(!line.contains("argon2"), "no value in the log: {line}");
    assert!(!log.text().contains(&new_hash));
    b.run_until(async {}).await;
}

#[test]
fn sighup_via_switchyard_reload_restarts_a_changed_driver() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("broker.pid");
    let body = driver("a", "conformance", "[driver.options]\nv = 1");
    let text = config_text(&dir.path().join("data"), &body).replace(
        "[broker]\n",
        &format!("[broker]\npid_file = \"{}\"\n", pid_file.display()),
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &text).unwrap();
    let mut child = Command::new(BIN)
        .arg("-c")
        .arg(&path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let wait_line = |parts: &[&str]| -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                if parts.iter().all(|p| l.contains(p)) {
                    return l;
                }
            }
        }
        panic!("no line with {parts:?}");
    };
    wait_line(&["driver alive", "driver=a"]);
    std::fs::write(&path, text.replace("v = 1", "v = 2")).unwrap();
    let out = Command::new(BIN)
        .arg("-c")
        .arg(&path)
        .arg("reload")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_line(&["SIGHUP"]);
    wait_line(&["drivers reloaded", "hot=[\"a\"]"]);
    // SIGTERM: the broker stops its driver and exits 0, removing its pid file.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(!pid_file.exists());
}
