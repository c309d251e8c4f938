//! The host's CPU load while a run goes: a thread reads `/proc/stat` every
//! [`SAMPLE_PERIOD`] and keeps each interval's busy share and run queue. It is host-wide on
//! purpose — whatever else runs on the machine competes with the fleet just the same.
//!
//! A thread of its own rather than a task: its timing must not depend on the runtime the
//! fleet's control traffic keeps busy. Under load a wake-up comes late, but each interval's
//! share is computed from the kernel's counters over the interval actually elapsed, so a late
//! sample is a longer interval, never a wrong one.

use crate::record::sections::HostLoadSample;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the host is sampled.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(250);

/// CPU time counters of all CPUs together (the `cpu` line of `/proc/stat`), in clock ticks,
/// and the runnable threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq + steal.
    pub busy: u64,
    /// busy + idle + iowait.
    pub total: u64,
    pub procs_running: u32,
}

/// Parses `/proc/stat`'s text; None when its `cpu` line is missing or malformed.
pub fn parse_stat(text: &str) -> Option<CpuTimes> {
    let mut lines = text.lines();
    let cpu = lines.find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let f = |i: usize| v.get(i).copied().unwrap_or(0);
    if v.len() < 4 {
        return None;
    }
    let busy = f(0) + f(1) + f(2) + f(5) + f(6) + f(7);
    let procs_running = text
        .lines()
        .find_map(|l| l.strip_prefix("procs_running "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    Some(CpuTimes {
        busy,
        total: busy + f(3) + f(4),
        procs_running,
    })
}

/// The counters now.
pub fn read_cpu_times() -> Option<CpuTimes> {
    parse_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// One interval from two readings; None when no tick elapsed.
pub fn interval(
    before: CpuTimes,
    after: CpuTimes,
    t_ms: f64,
    interval_ms: f64,
) -> Option<HostLoadSample> {
    let total = after.total.checked_sub(before.total)?;
    let busy = after.busy.saturating_sub(before.busy);
    (total > 0).then(|| HostLoadSample {
        t_ms,
        interval_ms,
        busy_share: (busy as f64 / total as f64).min(1.0),
        procs_running: after.procs_running,
    })
}

/// The running sampler; [`HostLoadSampler::stop`] ends it and hands over the intervals.
pub struct HostLoadSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<HostLoadSample>>>,
    thread: Option<JoinHandle<()>>,
}

impl HostLoadSampler {
    /// Starts sampling; times are ms after `zero`. Without a readable `/proc/stat` (not
    /// Linux) the sampler records nothing and the run's verdict is "unknown".
    pub fn start(zero: Instant) -> HostLoadSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let thread = std::thread::Builder::new()
            .name("host-load".into())
            .spawn(move || sample_until(&s, &out, zero))
            .map_err(|e| tracing::warn!("host load sampler not started: {e}"))
            .ok();
        HostLoadSampler {
            stop,
            samples,
            thread,
        }
    }

    /// Stops the sampler and returns every interval it recorded.
    pub fn stop(mut self) -> Vec<HostLoadSample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for HostLoadSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn sample_until(stop: &AtomicBool, out: &Mutex<Vec<HostLoadSample>>, zero: Instant) {
    let Some(mut before) = read_cpu_times() else {
        return;
    };
    let mut at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(SAMPLE_PERIOD);
        let Some(now) = read_cpu_times() else {
            return;
        };
        let now_at = Instant::now();
        let t_ms = now_at.saturating_duration_since(zero).as_secs_f64() * 1e3;
        let len_ms = now_at.duration_since(at).as_secs_f64() * 1e3;
        if let Some(s) = interval(before, now, t_ms, len_ms) {
            out.lock().unwrap_or_else(|e| e.into_inner()).push(s);
            (before, at) = (now, now_at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str =
        "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 1 2 3 4\nintr 1\nprocs_running 3\nprocs_blocked 0\n";

    #[test]
    fn parses_the_cpu_line_and_the_run_queue() {
        let t = parse_stat(STAT).unwrap();
        assert_eq!(t.busy, 100 + 5 + 50 + 3 + 2);
        assert_eq!(t.total, 160 + 800 + 40);
        assert_eq!(t.procs_running, 3);
        assert!(parse_stat("cpu0 1 2 3 4\n").is_none());
        assert!(parse_stat("cpu  1 x 3 4\n").is_none());
    }

    #[test]
    fn an_interval_is_the_busy_share_of_the_ticks_between_two_readings() {
        let a = CpuTimes {
            busy: 100,
            total: 1000,
            procs_running: 1,
        };
        let b = CpuTimes {
            busy: 175,
            total: 1100,
            procs_running: 4,
        };
        let s = interval(a, b, 500.0, 250.0).unwrap();
        assert!((s.busy_share - 0.75).abs() < 1e-12);
        assert_eq!(s.procs_running, 4);
        assert!(interval(a, a, 1.0, 1.0).is_none(), "no tick elapsed");
    }

    #[test]
    fn the_sampler_records_this_host() {
        let s = HostLoadSampler::start(Instant::now());
        std::thread::sleep(SAMPLE_PERIOD * 3);
        let got = s.stop();
        assert!(!got.is_empty());
        assert!(got.iter().all(|s| (0.0..=1.0).contains(&s.busy_share)));
    }
}
