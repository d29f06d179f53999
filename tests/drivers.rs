//! Driver lifecycle under the real broker: start, crash and restart, `state cold`,
//! a driver that never says alive, one that ignores SIGTERM, a crash loop given up,
//! required drivers at start-up, logs, and shutdown with no process left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::drivers::*;
use common::Log;
use switchyard_actors::drivers::DriverState;

#[actix::test]
async fn alive_crash_restart_and_clean_shutdown() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &driver("conf", "conformance", "")))
        .await
        .unwrap();
    let first = wait_alive(&b, "conf").await;
    let pid1 = first.pid.unwrap();
    assert_eq!((first.starts, first.restarts), (1, 0));
    // L7: the driver exits; the broker restarts it at once and sends options + start again.
    let r = b
        .call(
            "driver:conf",
            "exit",
            Bytes::from_static(b"{\"code\":3}"),
            Some(Duration::from_millis(300)),
        )
        .await;
    assert!(r.is_err());
    let again = wait_driver(&b, "conf", 5, |s| {
        s.state == DriverState::Alive && s.starts == 2
    })
    .await;
    assert_ne!(again.pid, Some(pid1));
    assert_eq!((again.restarts, again.alive_count), (1, 2));
    assert!(gone(pid1).await);
    log.wait_for(&["restarting driver", "driver=conf", "exit status: 3"])
        .await;
    // fd 3 (INFO) and stderr (WARN and up) are logged under the driver's name.
    log.wait_for(&[
        "driver=conf",
        "stream=\"fd3\"",
        "conformance driver started",
    ])
    .await;
    log.wait_for(&["driver=conf", "stream=\"stderr\"", "exiting with code 3"])
        .await;
    // Shutdown: command stop, state stopped, stdin closed, the library exits.
    let pid2 = again.pid.unwrap();
    b.run_until(async {}).await;
    assert!(gone(pid2).await, "no orphan after shutdown");
    log.wait_for(&["driver=conf", "daemon closed channel"])
        .await;
    log.wait_for(&["driver process exited", "driver=conf", "exit status: 1"])
        .await;
}

#[actix::test]
async fn state_cold_restarts_exactly_once() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &driver("conf", "conformance", "")))
        .await
        .unwrap();
    let pid1 = wait_alive(&b, "conf").await.pid.unwrap();
    let _ = b
        .call(
            "driver:conf",
            "state",
            Bytes::from_static(b"{\"state\":\"cold\"}"),
            None,
        )
        .await;
    let s = wait_driver(&b, "conf", 5, |s| {
        s.state == DriverState::Alive && s.starts == 2
    })
    .await;
    assert_ne!(s.pid, Some(pid1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = wait_alive(&b, "conf").await;
    assert_eq!((s.starts, s.restarts), (2, 1), "one cold restart, not two");
    assert!(gone(pid1).await);
    b.run_until(async {}).await;
}

#[actix::test]
async fn never_alive_is_terminated_retried_and_given_up_without_orphans() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    // `silent` never says alive and ignores the end of its input: SIGTERM ends it.
    let b = switchyard::start(&config(
        dir.path(),
        &driver("mute", "silent", "start_timeout_ms = 200"),
    ))
    .await
    .unwrap();
    let s = wait_driver(&b, "mute", 15, |s| s.state == DriverState::Failed).await;
    assert_eq!(
        s.starts, 4,
        "first start and 3 retries (supervisor.max_restarts)"
    );
    assert!(s
        .last_error
        .unwrap()
        .contains("no `state alive` within 200 ms"));
    let pids = pids_in(&log.text(), "mute");
    assert_eq!(pids.len(), 4);
    for p in pids {
        assert!(gone(p).await, "pid {p} left running");
    }
    log.wait_for(&["driver still running, signalling", "driver=mute", "SIGTERM"])
        .await;
    log.wait_for(&["driver given up", "driver=mute"]).await;
    log.wait_for(&["retrying driver start", "driver=mute"])
        .await;
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_driver_that_ignores_sigterm_gets_sigkill() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stubborn.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.05; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let body = format!(
        "[[driver]]\nname = \"stubborn\"\ncommand = \"{}\"\nstart_timeout_ms = 200\n",
        script.display()
    );
    let mut text = config_text(dir.path(), &body);
    text = text.replace("max_restarts = 3", "max_restarts = 0");
    let b = switchyard::start(&switchyard::Config::parse(&text, "test").unwrap())
        .await
        .unwrap();
    wait_driver(&b, "stubborn", 10, |s| s.state == DriverState::Failed).await;
    let pid = pids_in(&log.text(), "stubborn")[0];
    assert!(gone(pid).await);
    log.wait_for(&["signalling", "driver=stubborn", "SIGTERM"])
        .await;
    log.wait_for(&["signalling", "driver=stubborn", "SIGKILL"])
        .await;
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_crash_loop_is_given_up_after_the_policy() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), &driver("loop", "crashloop", "")))
        .await
        .unwrap();
    let s = wait_driver(&b, "loop", 15, |s| s.state == DriverState::Failed).await;
    assert_eq!(s.restarts, 3);
    assert_eq!(s.starts, 4);
    assert!(s.alive_count >= 1);
    for p in pids_in(&log.text(), "loop") {
        assert!(gone(p).await);
    }
    log.wait_for(&["driver given up", "driver=loop", "max_restarts=3"])
        .await;
    // A given-up driver answers calls at once.
    let r = b.call("driver:loop", "echo", Bytes::new(), None).await;
    assert!(r.unwrap_err().contains("not alive (failed)"));
    b.run_until(async {}).await;
}

#[actix::test]
async fn a_required_driver_that_cannot_start_aborts_start_up() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    // The command is there when the config is read (which checks it) and gone when
    // the driver is spawned.
    let gone = dir.path().join("gone-driver");
    std::fs::write(&gone, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&gone, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let body = format!(
        "[[driver]]\nname = \"gone\"\ncommand = \"{}\"\nrequired = true\n",
        gone.display()
    );
    let c = config(dir.path(), &body);
    std::fs::remove_file(&gone).unwrap();
    let err = switchyard::start(&c).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("required driver `gone` failed to start"),
        "{msg}"
    );
    assert!(msg.contains(&gone.display().to_string()), "{msg}");
    let body = driver("mute", "silent", "required = true\nstart_timeout_ms = 200");
    let err = switchyard::start(&config(dir.path(), &body))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no `state alive` within 200 ms"),
        "{err}"
    );
    // A required driver that comes up lets start-up finish with it alive.
    let body = driver("conf", "conformance", "required = true");
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    let s = b.drivers().await;
    assert_eq!(s[0].state, DriverState::Alive);
    b.run_until(async {}).await;
}

#[actix::test]
async fn the_example_bash_driver_runs_its_rule_and_answers_calls() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/drivers/ticker.sh");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/drivers/ticker.toml"
    ))
    .unwrap();
    let drivers = &example[example.find("[[driver]]").unwrap()..];
    let body = drivers
        .replace("scripts/drivers/ticker.sh", script)
        .replace("args = [\"2\"]", "args = [\"0.1\"]");
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    wait_alive(&b, "ticker").await;
    let r = b
        .call("driver:ticker", "hello", Bytes::from_static(b"world"), None)
        .await;
    assert_eq!(&r.unwrap()[..], b"hello, world");
    let r = b.call("driver:ticker", "nope", Bytes::new(), None).await;
    assert_eq!(r.unwrap_err(), "ticker has no method nope");
    log.wait_for(&["command returned", "even-ticks", "status=success"])
        .await;
    log.wait_for(&["driver=ticker", "stream=\"stderr\"", "tick 2 was even"])
        .await;
    let pid = b.drivers().await[0].pid.unwrap();
    b.run_until(async {}).await;
    assert!(gone(pid).await);
    log.wait_for(&["driver=ticker", "daemon closed channel"])
        .await;
}

#[actix::test]
async fn a_malformed_frame_from_a_driver_is_logged_with_its_offset_and_restarts_it() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("garbled.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'state alive 0 0\\n'\nsleep 0.2\nprintf 'not an envelope\\n'\nexec cat >/dev/null\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let body = format!(
        "[[driver]]\nname = \"garbled\"\ncommand = \"{}\"\n",
        script.display()
    );
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    log.wait_for(&["malformed frame from driver", "driver=garbled", "offset=16"])
        .await;
    log.wait_for(&[
        "restarting driver",
        "driver=garbled",
        "malformed frame at byte 16",
    ])
    .await;
    let s = wait_driver(&b, "garbled", 5, |s| s.starts >= 2).await;
    assert!(s.restarts >= 1);
    b.run_until(async {}).await;
    for p in pids_in(&log.text(), "garbled") {
        assert!(gone(p).await, "pid {p} left running");
    }
}
