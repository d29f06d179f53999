//! Compiles `proto/switchyard.proto` with protox (pure Rust, no `protoc` needed), and
//! records the git commit and build profile that `--version`, `/metrics` and the page
//! report.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/switchyard.proto");
    let fds = protox::compile(["proto/switchyard.proto"], ["proto"])?;
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    build_info();
    Ok(())
}

/// `SWITCHYARD_GIT_COMMIT` wins (a container build has no `.git`), then `git`, then
/// "unknown": a build never fails for want of git.
fn build_info() {
    println!("cargo:rerun-if-env-changed=SWITCHYARD_GIT_COMMIT");
    let commit = match std::env::var("SWITCHYARD_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => git_commit().unwrap_or_else(|| "unknown".into()),
    };
    // PROFILE is "debug" or "release": the profile the build inherits from.
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=SWITCHYARD_COMMIT={commit}");
    println!("cargo:rustc-env=SWITCHYARD_PROFILE={profile}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !s.trim().is_empty()).then(|| s.trim().to_string())
}

/// The commit, and the files whose change means another commit (a worktree's git dir
/// is not `.git` itself, so ask git where it is).
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from) {
        watch(&dir.join("HEAD"));
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let common = git(&["rev-parse", "--git-common-dir"])
                .map(|c| Path::new(env!("CARGO_MANIFEST_DIR")).join(c))
                .unwrap_or_else(|| dir.clone());
            watch(&common.join(&r));
            watch(&common.join("packed-refs"));
        }
    }
    Some(commit)
}

fn watch(p: &Path) {
    if p.exists() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
