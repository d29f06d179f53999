//! What a driver starts ends with it: children it detached with `setsid` (or by a
//! double fork) are re-parented to the broker, a child subreaper, and are ended and
//! reaped when the driver exits, however often it crashes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::drivers::*;
use common::Log;
use switchyard_actors::drivers::DriverState;

/// Leaves three sleepers behind (detached, double-forked, in its group), then crashes.
const LEAVER: &str = "#!/bin/bash\n\
setsid sleep 987654 &\n\
( setsid sleep 987653 < /dev/null > /dev/null 2>&1 & )\n\
sleep 987652 < /dev/null > /dev/null 2>&1 &\n\
sleep 0.3\n\
exit 3\n";

/// Pids of live sleepers this test started.
fn sleepers() -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if [&b"sleep\x0098765"[..]].iter().any(|p| cmd.starts_with(p)) && running(pid) {
            out.push(pid);
        }
    }
    out
}

/// Zombie children of this process whose command was `sleep`.
fn sleeping_zombies() -> Vec<u32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| e.ok())
    {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for pid in list.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.contains("(sleep) Z") {
                out.push(pid.parse().unwrap());
            }
        }
    }
    out
}

#[actix::test]
async fn a_crashing_driver_leaves_no_process_behind() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("leaver.sh");
    std::fs::write(&script, LEAVER).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let body = format!(
        "[[driver]]\nname = \"leaver\"\ncommand = \"{}\"\nstart_timeout_ms = 600000\n",
        script.display()
    );
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    // Four runs (the start and three restarts), then it is given up.
    let st = wait_driver(&b, "leaver", 60, |s| s.state == DriverState::Failed).await;
    assert_eq!(st.starts, 4, "{st:?}");
    let mut left = sleepers();
    for _ in 0..250 {
        if left.is_empty() && sleeping_zombies().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        left = sleepers();
    }
    let zombies = sleeping_zombies();
    for &pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(zombies.is_empty(), "left unreaped: {zombies:?}");
    let line = log
        .wait_for(&["driver left processes behind, ending them", "driver=leaver"])
        .await;
    assert!(line.contains("processes="), "{line}");
    b.run_until(async {}).await;
}

/// Detaches a short sleeper (`nap`, so no other test's processes look like it) by a
/// double fork, then runs on as a long sleep.
const RUNNER: &str =
    "#!/bin/bash\n( setsid NAP 1.5 < /dev/null > /dev/null 2>&1 & )\nexec sleep 123456\n";

#[actix::test]
async fn orphans_of_a_running_driver_are_reaped_when_they_exit() {
    let (_log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let nap = dir.path().join("nap");
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    std::os::unix::fs::symlink(sleep, &nap).unwrap();
    let script = dir.path().join("runner.sh");
    std::fs::write(&script, RUNNER.replace("NAP", &nap.display().to_string())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let body = format!(
        "[[driver]]\nname = \"runner\"\ncommand = \"{}\"\nstart_timeout_ms = 600000\n",
        script.display()
    );
    let b = switchyard::start(&config(dir.path(), &body)).await.unwrap();
    let st = wait_driver(&b, "runner", 10, |s| s.pid.is_some()).await;
    // The napper is ours once the subshell is gone, and a zombie after 1.5 s; it is
    // reaped while the driver runs on.
    let mut seen = false;
    for _ in 0..250 {
        let naps = children_named("nap");
        seen |= !naps.is_empty();
        if seen && naps.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(seen, "the napper never came to us");
    assert_eq!(children_named("nap"), vec![], "the napper is not reaped");
    let st2 = wait_driver(&b, "runner", 10, |s| s.pid.is_some()).await;
    assert_eq!((st2.pid, st2.restarts), (st.pid, 0), "the driver runs on");
    b.run_until(async {}).await;
}

/// Our children whose command is `name`, with their state.
fn children_named(name: &str) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| e.ok())
    {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for pid in list.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if let Some(rest) = stat.strip_prefix(&format!("{pid} ({name}) ")) {
                out.push((pid.parse().unwrap(), rest.chars().next().unwrap()));
            }
        }
    }
    out
}
