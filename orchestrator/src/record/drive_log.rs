//! What the workload driver learned along the way ([`DriveLog`]): the phases as they ran and
//! the moments the figures are measured between. With the node records it is the input of
//! [`crate::figures`].

use super::churn_log::ChurnLog;
use super::run_record::PhaseRecord;
use super::sections::ClockSection;
use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct DriveLog {
    pub phases: Vec<PhaseRecord>,
    /// When setup (connect + subscriptions before the first publish) ended.
    pub setup_done: Option<Instant>,
    /// Running estimate of expected deliveries, for `settle`.
    pub expected_estimate: u64,
    pub first_publish: Option<Instant>,
    pub settle_end: Option<Instant>,
    /// What the churn phase did (events, removals, the orchestrator's record of each node).
    pub churn: Option<ChurnLog>,
    /// The nodes' clock offsets, measured at start and end (the record's `clock` section).
    pub clock: Option<ClockSection>,
}
