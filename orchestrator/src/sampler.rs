//! Memory and CPU of every local node process, measured from outside: `/proc/PID/smaps_rollup`
//! (PSS, USS = Private_Clean + Private_Dirty, RSS) and `/proc/PID/stat` (CPU, state), read
//! on one thread of its own (`ptb-sampler`) while the run goes.
//!
//! Cheap at 1000 nodes: a sweep over the fleet takes `2 ms × nodes` (at least 1 s, at most
//! 10 s) and its reads are spread evenly over that time, so the sampler reads one process
//! at a time instead of all at once. A process that has exited keeps its last samples.
//!
//! API for other parts: [`Sampler::start`], [`SamplerHandle::watch`] for each process as it
//! starts, [`Sampler::stop`] returning [`Sampled`]: per node index its [`OutsideSamples`] and
//! the fleet's PSS totals per sweep.

use crate::record::OutsideSamples;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Hands the sampler the processes to follow; cheap to clone.
#[derive(Clone, Default)]
pub struct SamplerHandle {
    targets: Arc<Mutex<Vec<(u32, u32)>>>,
}

impl SamplerHandle {
    /// Follow process `pid`, node `index`, from now on.
    pub fn watch(&self, index: u32, pid: u32) {
        if let Ok(mut t) = self.targets.lock() {
            t.retain(|&(i, _)| i != index);
            t.push((index, pid));
        }
    }
}

/// What the sampler measured, once stopped.
#[derive(Debug, Default)]
pub struct Sampled {
    pub nodes: BTreeMap<u32, OutsideSamples>,
    /// The fleet's PSS summed over one sweep, the largest and the last such sum.
    pub fleet_pss_peak_bytes: u64,
    pub fleet_pss_last_bytes: u64,
    /// The sampler thread's own CPU time.
    pub own_cpu_s: f64,
}

pub struct Sampler {
    handle: SamplerHandle,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Sampled>>,
}

impl Sampler {
    /// Starts the sampling thread (it sleeps while there is nothing to follow).
    pub fn start() -> std::io::Result<Self> {
        let handle = SamplerHandle::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (handle.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("ptb-sampler".into())
            .spawn(move || run(&h, &s))?;
        Ok(Sampler {
            handle,
            stop,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> SamplerHandle {
        self.handle.clone()
    }

    /// Takes one last sweep of the processes still there, then returns everything.
    pub fn stop(mut self) -> Sampled {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Time for one sweep over `n` processes. A read of smaps_rollup costs the kernel about
/// 0.2–0.4 ms (it walks the page tables), so reads are capped at about 50 per second: about
/// 2 % of one core at any fleet size, against 15 % of one core at 2 ms per node.
pub fn sweep_period(n: usize) -> Duration {
    Duration::from_millis((n as u64 * 20).clamp(1_000, 30_000))
}

fn run(handle: &SamplerHandle, stop: &AtomicBool) -> Sampled {
    let mut out = Sampled::default();
    let tick_s = 1.0 / clock_ticks_per_s();
    loop {
        let last = stop.load(Ordering::Relaxed);
        let targets = handle.targets.lock().map(|t| t.clone()).unwrap_or_default();
        let gap = sweep_period(targets.len()) / targets.len().max(1) as u32;
        let mut sum = 0u64;
        let mut read_any = false;
        for &(index, pid) in &targets {
            if let Some(m) = read_process(pid, tick_s) {
                read_any = true;
                sum += m.pss;
                out.nodes.entry(index).or_default().add(&m);
            }
            // The last sweep runs at once: the run is ending.
            if !last && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(gap);
            }
        }
        if read_any {
            out.fleet_pss_peak_bytes = out.fleet_pss_peak_bytes.max(sum);
            out.fleet_pss_last_bytes = sum;
        }
        if last {
            break;
        }
        if targets.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    out.own_cpu_s = thread_cpu_s(tick_s).unwrap_or(0.0);
    out
}

/// One reading of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub pss: u64,
    pub uss: u64,
    pub rss: u64,
    pub cpu_s: f64,
    pub state: char,
}

impl OutsideSamples {
    fn add(&mut self, m: &Reading) {
        self.samples += 1;
        self.peak_pss_bytes = self.peak_pss_bytes.max(m.pss);
        self.peak_uss_bytes = self.peak_uss_bytes.max(m.uss);
        self.peak_rss_bytes = self.peak_rss_bytes.max(m.rss);
        (
            self.last_pss_bytes,
            self.last_uss_bytes,
            self.last_rss_bytes,
        ) = (m.pss, m.uss, m.rss);
        self.cpu_s = m.cpu_s;
        self.state = m.state.to_string();
    }
}

/// Reads `/proc/PID/smaps_rollup` and `/proc/PID/stat`; `None` once the process is gone (a
/// zombie has no memory to read).
pub fn read_process(pid: u32, tick_s: f64) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (state, cpu_s) = parse_stat(&stat, tick_s)?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let (pss, uss, rss) = parse_rollup(&rollup)?;
    Some(Reading {
        pss,
        uss,
        rss,
        cpu_s,
        state,
    })
}

/// (PSS, USS, RSS) in bytes from smaps_rollup's `Pss:`, `Private_Clean:` + `Private_Dirty:`
/// and `Rss:` lines (kB).
pub fn parse_rollup(text: &str) -> Option<(u64, u64, u64)> {
    let (mut pss, mut uss, mut rss) = (None, 0u64, None);
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(key), Some(kb)) = (it.next(), it.next().and_then(|v| v.parse::<u64>().ok()))
        else {
            continue;
        };
        match key {
            "Pss:" => pss = Some(kb * 1024),
            "Rss:" => rss = Some(kb * 1024),
            "Private_Clean:" | "Private_Dirty:" => uss += kb * 1024,
            _ => {}
        }
    }
    Some((pss?, uss, rss?))
}

/// (state, utime + stime in seconds) from a `stat` line; the command name may hold spaces
/// and parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str, tick_s: f64) -> Option<(char, f64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), utime 14, stime 15.
    let state = f.first()?.chars().next()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((state, (utime + stime) as f64 * tick_s))
}

pub fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// The calling thread's CPU time, from `/proc/thread-self/stat`.
pub fn thread_cpu_s(tick_s: f64) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    parse_stat(&stat, tick_s).map(|(_, cpu)| cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn parses_stat_with_odd_names() {
        let line = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(line, 0.01), Some(('S', 3.0)));
    }

    #[test]
    fn parses_rollup() {
        let text = "55d0-7ff [rollup]\nRss: 100 kB\nPss: 40 kB\nPss_Anon: 10 kB\n\
                    Shared_Clean: 60 kB\nPrivate_Clean: 5 kB\nPrivate_Dirty: 30 kB\n";
        assert_eq!(parse_rollup(text), Some((40 * 1024, 35 * 1024, 100 * 1024)));
    }

    /// Independent of the parser above: the field read with a plain line search.
    fn kb(text: &str, key: &str) -> u64 {
        let line = text.lines().find(|l| l.starts_with(key)).unwrap();
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .unwrap()
            * 1024
    }

    /// Real processes (three idle `sleep`s): the sampler's figures equal what /proc says of
    /// them, and the fleet's PSS sum is the sum of the processes' PSS.
    #[test]
    fn the_sampler_agrees_with_proc_on_real_processes() {
        let mut children: Vec<_> = (0..3)
            .map(|_| {
                Command::new("sleep")
                    .arg("30")
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let sampler = Sampler::start().unwrap();
        for (i, c) in children.iter().enumerate() {
            sampler.handle().watch(i as u32, c.id());
        }
        // At least one full sweep (1 s for three processes) before stopping.
        std::thread::sleep(sweep_period(3) + Duration::from_millis(300));
        let sampled = sampler.stop();
        let mut sum = 0;
        for (i, c) in children.iter().enumerate() {
            let s = &sampled.nodes[&(i as u32)];
            let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", c.id())).unwrap();
            let pss = kb(&rollup, "Pss:");
            sum += s.last_pss_bytes;
            assert!(s.samples >= 2, "{s:?}");
            // An idle process's pages do not change; PSS moves only when another process
            // mapping the same pages starts or stops.
            assert_eq!(s.last_rss_bytes, kb(&rollup, "Rss:"), "{s:?}");
            assert_eq!(
                s.last_uss_bytes,
                kb(&rollup, "Private_Clean:") + kb(&rollup, "Private_Dirty:")
            );
            assert!(s.last_pss_bytes.abs_diff(pss) * 10 <= pss, "{s:?} vs {pss}");
            assert!(s.last_uss_bytes <= s.last_pss_bytes && s.last_pss_bytes <= s.last_rss_bytes);
            assert_eq!(s.state, "S");
        }
        assert_eq!(sampled.fleet_pss_last_bytes, sum);
        for c in &mut children {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}
