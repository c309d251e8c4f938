//! Wall-clock time in ns since the Unix epoch: every `*_ns` field in the contract. All
//! processes of a local run share this clock, so receive − publish is a one-way latency.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
