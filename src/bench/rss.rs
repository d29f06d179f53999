//! The broker's memory as a bench sees it: `/proc/<pid>/status`, read while it runs.

/// One field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`…).
pub(crate) fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set size of `pid` since it started (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// Resident set size samples of one process over a run: at the start, the largest
/// seen, and the latest. The peak covers this run only, unlike `VmHWM`.
#[derive(Debug, Clone)]
pub struct RssSampler {
    pid: u32,
    pub start: Option<u64>,
    pub peak: Option<u64>,
    pub now: Option<u64>,
}

impl RssSampler {
    pub fn new(pid: u32) -> RssSampler {
        let mut r = RssSampler {
            pid,
            start: None,
            peak: None,
            now: None,
        };
        r.sample();
        r.start = r.now;
        r
    }

    pub fn sample(&mut self) {
        self.now = status_kib(self.pid, "VmRSS");
        self.peak = self.peak.max(self.now);
    }

    /// `start 12.0 MB  peak 30.1 MB  end 25.3 MB`, or why there is no figure.
    pub fn summary(&self) -> String {
        let mb =
            |k: Option<u64>| k.map_or("?".to_string(), |k| format!("{:.1} MB", k as f64 / 1024.0));
        if self.start.is_none() {
            return format!("unknown (no process {})", self.pid);
        }
        format!(
            "start {}  peak {}  end {}",
            mb(self.start),
            mb(self.peak),
            mb(self.now)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let mut r = RssSampler::new(std::process::id());
        let start = r.start.unwrap();
        let big = vec![1u8; 64 << 20];
        r.sample();
        assert!(r.peak.unwrap() >= start + 60 * 1024, "{r:?}");
        drop(big);
        // VmHWM is kept by the kernel in batches: it may trail VmRSS by a few pages.
        assert!(peak_rss_kib(std::process::id()).unwrap() > start);
        assert!(r.summary().starts_with("start "));
        assert!(RssSampler::new(u32::MAX).summary().starts_with("unknown"));
    }
}
