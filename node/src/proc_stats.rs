//! The process's own memory and CPU use, for snapshots and the final result.
//!
//! Snapshots come every `snapshot_interval_ms` from every node, so their probe is the cheap
//! one: `/proc/self/statm` (a handful of numbers, where `status` formats some fifty fields),
//! kept open and re-read in place with one `pread`. The peak (`VmHWM`) is only needed at the
//! end and comes from `status`.

use std::os::unix::fs::FileExt;

/// Resident set size now and at its peak, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// Current resident set size, read cheaply and often.
#[derive(Debug)]
pub struct RssProbe {
    statm: Option<std::fs::File>,
    page_bytes: u64,
}

impl RssProbe {
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        RssProbe {
            statm: std::fs::File::open("/proc/self/statm").ok(),
            page_bytes: if page > 0 { page as u64 } else { 4096 },
        }
    }

    /// Resident bytes now (0 where `/proc` is absent).
    pub fn rss_bytes(&self) -> u64 {
        let Some(f) = &self.statm else { return 0 };
        let mut buf = [0u8; 128];
        match f.read_at(&mut buf, 0) {
            Ok(n) => parse_statm(&buf[..n]).map_or(0, |pages| pages * self.page_bytes),
            Err(_) => 0,
        }
    }
}

/// The second field of `/proc/<pid>/statm`: resident pages.
fn parse_statm(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text)
        .ok()?
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Reads `/proc/self/status`; falls back to `getrusage` for the peak where `/proc` is absent.
pub fn memory() -> Memory {
    let mut m = std::fs::read_to_string("/proc/self/status")
        .map(|s| parse_status(&s))
        .unwrap_or_default();
    if m.peak_rss_bytes == 0 {
        m.peak_rss_bytes = rusage().map_or(0, |r| r.ru_maxrss.max(0) as u64 * 1024);
    }
    m
}

/// Extracts `VmRSS` and `VmHWM` (reported in kB) from the text of `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> Memory {
    let mut m = Memory::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let field = match key {
            "VmRSS" => &mut m.rss_bytes,
            "VmHWM" => &mut m.peak_rss_bytes,
            _ => continue,
        };
        let mut parts = rest.split_whitespace();
        if let (Some(n), Some("kB")) = (
            parts.next().and_then(|n| n.parse::<u64>().ok()),
            parts.next(),
        ) {
            *field = n * 1024;
        }
    }
    m
}

/// User + system CPU time of the whole process, in ns (µs precision, unlike `/proc/self/stat`'s
/// clock ticks).
pub fn cpu_ns() -> u64 {
    rusage().map_or(0, |r| timeval_ns(r.ru_utime) + timeval_ns(r.ru_stime))
}

fn timeval_ns(t: libc::timeval) -> u64 {
    t.tv_sec.max(0) as u64 * 1_000_000_000 + t.tv_usec.max(0) as u64 * 1_000
}

fn rusage() -> Option<libc::rusage> {
    let mut r = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, r.as_mut_ptr()) };
    // SAFETY: rc == 0 means the kernel wrote the whole struct (and it was zeroed before).
    (rc == 0).then(|| unsafe { r.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Name:\tpubsub-node\nUmask:\t0022\nState:\tS (sleeping)\n\
VmPeak:\t   20400 kB\nVmSize:\t   20396 kB\nVmHWM:\t    7012 kB\nVmRSS:\t    6712 kB\n\
RssAnon:\t    1888 kB\nThreads:\t1\n";

    #[test]
    fn parses_rss_and_peak() {
        assert_eq!(
            parse_status(SAMPLE),
            Memory {
                rss_bytes: 6712 * 1024,
                peak_rss_bytes: 7012 * 1024
            }
        );
    }

    #[test]
    fn tolerates_missing_or_odd_fields() {
        assert_eq!(parse_status(""), Memory::default());
        assert_eq!(
            parse_status("VmRSS: lots\nVmHWM:\t12 kB\n"),
            Memory {
                rss_bytes: 0,
                peak_rss_bytes: 12 * 1024
            }
        );
    }

    #[test]
    fn statm_gives_resident_pages() {
        assert_eq!(parse_statm(b"5120 1792 1024 200 0 900 0\n"), Some(1792));
        assert_eq!(parse_statm(b"5120"), None);
        assert_eq!(parse_statm(b""), None);
    }

    #[test]
    fn live_values_are_plausible() {
        let m = memory();
        assert!(m.rss_bytes > 0);
        // The cheap probe agrees with status, read twice from the same open file.
        let probe = RssProbe::new();
        for _ in 0..2 {
            let rss = probe.rss_bytes();
            assert!(
                rss > m.rss_bytes / 2 && rss < m.rss_bytes * 2,
                "{rss} vs {m:?}"
            );
        }
        assert!(m.peak_rss_bytes >= m.rss_bytes);
        // Burn a little CPU so the counter cannot be zero.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_ns() > 0);
    }
}
