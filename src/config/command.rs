//! A driver's `command` is looked for when the config is read, where the spawner will
//! look for it: a path with a `/` as it stands (relative to the broker's working
//! directory), a bare name on `PATH`. A typo then fails `check-config`, start-up and
//! SIGHUP with the key and the line, not later as a driver in back-off.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why `command` cannot be run, if it cannot.
pub(super) fn unrunnable(command: &Path) -> Option<String> {
    let shown = command.display();
    if command.as_os_str().as_bytes().contains(&b'/') {
        let place = match command.is_relative() {
            true => match std::env::current_dir() {
                Ok(d) => format!(" (relative to the working directory {})", d.display()),
                Err(_) => " (relative to the working directory)".to_string(),
            },
            false => String::new(),
        };
        return match std::fs::metadata(command) {
            Err(e) => Some(format!("cannot run `{shown}`{place}: {e}")),
            Ok(m) if !m.is_file() => Some(format!("`{shown}`{place} is not a file")),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Some(format!("`{shown}`{place} is not executable"))
            }
            Ok(_) => None,
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(command))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    match found {
        true => None,
        false => Some(format!("`{shown}` is not an executable file on PATH")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_commands_as_the_spawner_does() {
        assert_eq!(unrunnable(Path::new("sh")), None);
        assert_eq!(unrunnable(Path::new("/bin/sh")), None);
        let e = unrunnable(Path::new("no-such-command-here")).unwrap();
        assert_eq!(
            e,
            "`no-such-command-here` is not an executable file on PATH"
        );
        let e = unrunnable(Path::new("/no/such/driver")).unwrap();
        assert!(e.starts_with("cannot run `/no/such/driver`: "), "{e}");
        let e = unrunnable(Path::new("./no/such/driver")).unwrap();
        assert!(e.contains("(relative to the working directory /"), "{e}");
        assert_eq!(unrunnable(Path::new("/")).unwrap(), "`/` is not a file");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        assert!(unrunnable(&plain).unwrap().ends_with("is not executable"));
    }
}
