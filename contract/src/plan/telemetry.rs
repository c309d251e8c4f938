use crate::duration::human;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// How often each node sends a snapshot (counts, RSS, CPU) during the run.
    #[serde(with = "human")]
    pub snapshot_interval: Duration,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            snapshot_interval: Duration::from_millis(500),
        }
    }
}
