//! systemd's readiness protocol (`sd_notify`), without libsystemd: when the service
//! manager set `NOTIFY_SOCKET`, one datagram per state change. `Type=notify` units then
//! count the broker as started only once its ports are bound, and show reloads and the
//! drain in `systemctl status`.
//!
//! Messages: `READY=1` once every port listens; `RELOADING=1` (with `MONOTONIC_USEC`)
//! when SIGHUP arrives and `READY=1` when the reload is done; `STOPPING=1` when the
//! drain starts. Each also sets `STATUS=`, the line `systemctl status` prints.

use std::os::unix::net::UnixDatagram;

use tracing::{debug, warn};

/// The environment variable systemd passes the socket in.
pub const SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Sends `state` (newline-separated `KEY=value` lines) to `NOTIFY_SOCKET`; does nothing
/// when it is unset. A failure is logged, never fatal: the broker serves either way.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os(SOCKET_ENV) else {
        return;
    };
    match send(&path, state) {
        Ok(()) => debug!(state = %state.replace('\n', " "), "sd_notify"),
        Err(e) => warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)"),
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    // `@name`: a socket in the abstract namespace (no file), as systemd may hand out.
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

/// `READY=1`: every port is bound and the broker serves.
pub fn ready() {
    notify(&format!(
        "READY=1\nSTATUS=serving\nMAINPID={}",
        std::process::id()
    ));
}

/// `RELOADING=1`: SIGHUP is being handled; `ready()` follows when it is done.
pub fn reloading() {
    notify(&format!(
        "RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC={}",
        monotonic_usec()
    ));
}

/// `STOPPING=1`: the drain has begun.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=draining connections");
}

/// CLOCK_MONOTONIC in µs, which systemd compares the reload against.
fn monotonic_usec() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => (t.tv_sec() as u64) * 1_000_000 + (t.tv_nsec() as u64) / 1000,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify");
        let rx = UnixDatagram::bind(&p).unwrap();
        send(p.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("switchyard-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn the_monotonic_clock_is_read() {
        assert!(monotonic_usec() > 0);
    }
}
