//! What the orchestrator measured of a node process from outside (`/proc`), beside what the
//! node reports of itself.

use serde::{Deserialize, Serialize};

/// One node's process as the orchestrator sampled it from `/proc/PID/smaps_rollup` and
/// `/proc/PID/stat` during the run (the sampler, [`crate::sampler`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OutsideSamples {
    /// Samples taken (each one of smaps_rollup and stat).
    pub samples: u32,
    /// Proportional set size: shared pages divided among the processes that map them, so the
    /// fleet's sum is the memory the fleet really uses.
    pub peak_pss_bytes: u64,
    /// Unique set size: Private_Clean + Private_Dirty, memory only this process holds.
    pub peak_uss_bytes: u64,
    /// Resident set size, shared pages counted in full.
    pub peak_rss_bytes: u64,
    pub last_pss_bytes: u64,
    pub last_uss_bytes: u64,
    pub last_rss_bytes: u64,
    /// User + system CPU time at the last sample.
    pub cpu_s: f64,
    /// The process state letter at the last sample (`R`, `S`, `D`, `T`, `Z`, …).
    pub state: String,
}
