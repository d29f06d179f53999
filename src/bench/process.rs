//! The broker process as a bench on the same machine sees it through `/proc`: which pid
//! listens on a port, how many descriptors it holds, its resident memory.

use std::collections::HashSet;

/// Descriptors `pid` has open (entries of `/proc/<pid>/fd`).
pub fn open_fds(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.filter(|e| e.is_ok()).count() as u64)
}

/// Resident set size of `pid` (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    super::rss::status_kib(pid, "VmRSS")
}

/// The socket inodes listening on TCP `port` (IPv4 and IPv6), from `/proc/net/tcp*`.
fn listening_inodes(port: u16) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let listens = *state == "0A";
            let on_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if let (true, true, Ok(i)) = (listens, on_port, inode.parse::<u64>()) {
                inodes.insert(i);
            }
        }
    }
    inodes
}

/// The process that holds a socket listening on TCP `port` of this machine, found by
/// matching `/proc/net/tcp*` inodes against every process's descriptors (processes of
/// other users are seen only as root).
pub fn listening_pid(port: u16) -> Option<u32> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    let want: HashSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let procs = std::fs::read_dir("/proc").ok()?;
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if want.contains(target.to_string_lossy().as_ref()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_by_its_listening_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(listening_pid(port), Some(std::process::id()));
        let more: Vec<_> = (0..5)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        // Other tests open and close descriptors meanwhile: these six and stdio at least.
        assert!(open_fds(std::process::id()).unwrap() >= 6 + 3);
        drop(l);
        drop(more);
        assert_eq!(listening_pid(port), None);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
