//! What was built: the version, the git commit and the profile, as `--version`,
//! `switchyard_build_info` in `/metrics` and the page report them.

/// The crate version (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit (12 hex digits), `SWITCHYARD_GIT_COMMIT` when the build set it, or
/// "unknown" when built outside git.
pub const COMMIT: &str = env!("SWITCHYARD_COMMIT");
/// "release" or "debug": the cargo profile the build inherited from.
pub const PROFILE: &str = env!("SWITCHYARD_PROFILE");

/// `0.1.0 (commit 0123456789ab, release)`: the one-line form.
pub fn line() -> &'static str {
    static LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINE.get_or_init(|| format!("{VERSION} (commit {COMMIT}, {PROFILE})"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_line_names_all_three() {
        let l = super::line();
        assert!(l.starts_with(super::VERSION), "{l}");
        assert!(
            l.contains(super::COMMIT) && l.contains(super::PROFILE),
            "{l}"
        );
        assert!(super::PROFILE == "debug" || super::PROFILE == "release");
    }
}
