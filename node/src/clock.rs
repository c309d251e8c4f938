//! Wall-clock time in ns since the Unix epoch: every `*_ns` field in the contract. All
//! processes of a local run share this clock, so receive − publish is a one-way latency.
//!
//! Across machines the orchestrator measures each node's offset θ (node clock − its clock)
//! and may send it (`clock{offset_ns}`): from then on every time here is the system clock
//! minus θ, i.e. on the orchestrator's clock, and receive − publish between two nodes is
//! corrected by θ_receiver − θ_publisher. A test can shift the clock on purpose
//! (`TESTBED_CLOCK_SKEW_NS`) to play a machine whose clock is off.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The injected skew (test aid), ns: part of what this node calls its own clock.
static SKEW_NS: AtomicI64 = AtomicI64::new(0);
/// The correction the orchestrator sent, ns: subtracted from the node's own clock.
static CORRECTION_NS: AtomicI64 = AtomicI64::new(0);

/// The node's wall clock: the system clock, plus an injected skew, minus the correction.
pub fn now_ns() -> u64 {
    let sys = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let t = sys + SKEW_NS.load(Ordering::Relaxed) as i128
        - CORRECTION_NS.load(Ordering::Relaxed) as i128;
    t.clamp(0, u64::MAX as i128) as u64
}

/// Shifts this node's clock by `ns` (before anything is stamped; test aid).
pub fn set_skew(ns: i64) {
    SKEW_NS.store(ns, Ordering::Relaxed);
}

/// From now on, times are the node's clock minus `offset_ns` (the `clock` command).
pub fn set_correction(offset_ns: i64) {
    CORRECTION_NS.store(offset_ns, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test touches the process-wide offsets, so no other test sees them change.
    #[test]
    fn skew_and_correction_shift_the_clock() {
        let base = now_ns();
        set_skew(3_600_000_000_000);
        let skewed = now_ns();
        assert!(skewed >= base + 3_600_000_000_000, "{skewed} vs {base}");
        set_correction(3_600_000_000_000);
        let corrected = now_ns();
        assert!(corrected >= base && corrected < skewed, "{corrected}");
        set_skew(0);
        set_correction(0);
    }
}
