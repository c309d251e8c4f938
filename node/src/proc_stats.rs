//! The process's own memory and CPU use, for snapshots and the final result.

/// Resident set size now and at its peak, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
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
    fn live_values_are_plausible() {
        let m = memory();
        assert!(m.rss_bytes > 0);
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
