//! Was the host, rather than the protocol, what bounded the run's figures? From the host
//! sampler's intervals and the measurement window (first publish → end of settle): the
//! window's busy share, run queue, and the verdict `host_saturated`. The definition and
//! its thresholds are in docs/report-format.md ("Host load").

use crate::record::sections::{HostLoadSample, HostLoadSection};

/// An interval is saturated at this busy share of all CPUs or above: the CPUs had no idle
/// time worth the name, so every runnable thread waited its turn.
pub const BUSY_THRESHOLD: f64 = 0.95;
/// The host was saturated when saturated intervals cover this share of the window or more.
pub const SATURATED_SHARE_THRESHOLD: f64 = 0.5;

/// The window the verdict is about, ms after the first launch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub from_ms: f64,
    pub to_ms: f64,
    /// true: first publish → end of settle; false: the whole run (nothing was published).
    pub publish: bool,
}

/// The section, or None without samples (the host could not be sampled).
pub fn section(
    samples: Vec<HostLoadSample>,
    window: Option<Window>,
    cpus: u32,
    sample_period_ms: f64,
) -> Option<HostLoadSection> {
    let first = samples.first()?;
    let whole = Window {
        from_ms: first.t_ms - first.interval_ms,
        to_ms: samples.last()?.t_ms,
        publish: false,
    };
    let w = window.filter(|w| w.to_ms > w.from_ms).unwrap_or(whole);
    // Each interval weighs by the time it shares with the window.
    let overlap = |s: &HostLoadSample| {
        let from = (s.t_ms - s.interval_ms).max(w.from_ms);
        (s.t_ms.min(w.to_ms) - from).max(0.0)
    };
    let inside: Vec<(&HostLoadSample, f64)> = samples
        .iter()
        .map(|s| (s, overlap(s)))
        .filter(|&(_, o)| o > 0.0)
        .collect();
    let time: f64 = inside.iter().map(|(_, o)| o).sum();
    let mean = |f: &dyn Fn(&HostLoadSample) -> f64| {
        if time > 0.0 {
            inside.iter().map(|(s, o)| f(s) * o).sum::<f64>() / time
        } else {
            0.0
        }
    };
    let saturated_share = mean(&|s| f64::from(u8::from(s.busy_share >= BUSY_THRESHOLD)));
    Some(HostLoadSection {
        cpus,
        sample_period_ms,
        window: if w.publish {
            "publish_to_settle"
        } else {
            "whole_run"
        }
        .into(),
        window_from_ms: w.from_ms,
        window_to_ms: w.to_ms,
        window_samples: inside.len() as u64,
        busy_share_mean: mean(&|s| s.busy_share),
        saturated_share,
        run_queue_mean: mean(&|s| f64::from(s.procs_running)),
        run_queue_max: inside
            .iter()
            .map(|(s, _)| s.procs_running)
            .max()
            .unwrap_or(0),
        busy_threshold: BUSY_THRESHOLD,
        saturated_share_threshold: SATURATED_SHARE_THRESHOLD,
        host_saturated: !inside.is_empty() && saturated_share >= SATURATED_SHARE_THRESHOLD,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(busy: &[f64]) -> Vec<HostLoadSample> {
        busy.iter()
            .enumerate()
            .map(|(i, &b)| HostLoadSample {
                t_ms: 250.0 * (i + 1) as f64,
                interval_ms: 250.0,
                busy_share: b,
                procs_running: if b >= 0.95 { 6 } else { 1 },
            })
            .collect()
    }

    #[test]
    fn saturated_when_most_of_the_window_was_busy() {
        // Idle before the window, busy within it.
        let s = samples(&[0.1, 0.1, 1.0, 0.99, 0.97, 0.5]);
        let w = Window {
            from_ms: 500.0,
            to_ms: 1500.0,
            publish: true,
        };
        let h = section(s, Some(w), 2, 250.0).unwrap();
        assert_eq!(h.window, "publish_to_settle");
        assert_eq!(h.window_samples, 4);
        assert!((h.saturated_share - 0.75).abs() < 1e-9, "{h:?}");
        assert!(h.host_saturated);
        assert_eq!(h.run_queue_max, 6);
        // The same load outside the window does not count.
        let late = Window {
            from_ms: 0.0,
            to_ms: 500.0,
            publish: true,
        };
        let h = section(samples(&[0.1, 0.1, 1.0, 1.0]), Some(late), 2, 250.0).unwrap();
        assert!(!h.host_saturated && h.saturated_share == 0.0, "{h:?}");
    }

    #[test]
    fn a_window_shorter_than_a_sample_takes_the_interval_it_falls_in() {
        let w = Window {
            from_ms: 300.0,
            to_ms: 310.0,
            publish: true,
        };
        let h = section(samples(&[0.2, 1.0, 0.2]), Some(w), 2, 250.0).unwrap();
        assert_eq!(h.window_samples, 1);
        assert!(h.host_saturated);
    }

    #[test]
    fn without_a_window_the_whole_run_and_without_samples_nothing() {
        let h = section(samples(&[0.2, 0.3]), None, 2, 250.0).unwrap();
        assert_eq!(h.window, "whole_run");
        assert!((h.busy_share_mean - 0.25).abs() < 1e-9);
        assert!(!h.host_saturated);
        assert!(section(vec![], None, 2, 250.0).is_none());
    }
}
