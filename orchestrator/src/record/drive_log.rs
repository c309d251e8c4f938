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
    /// When the first workload phase started (after connect, and after the witnesses joined).
    pub workload_start: Option<Instant>,
    pub settle_end: Option<Instant>,
    /// The last settle round that counted more deliveries than the one before: a settle that
    /// times out on a few lost copies ends the host-load window here, not at its timeout.
    pub last_progress: Option<Instant>,
    /// What the churn phase did (events, removals, the orchestrator's record of each node).
    pub churn: Option<ChurnLog>,
    /// The nodes' clock offsets, measured at start and end (the record's `clock` section).
    pub clock: Option<ClockSection>,
    /// The lock-step publish phases, message by message.
    pub lockstep: Vec<LockstepLog>,
}

/// One lock-step publish phase as the driver ran it.
#[derive(Debug, Default)]
pub struct LockstepLog {
    pub phase: usize,
    pub topic: String,
    pub planned: u32,
    pub messages: Vec<SentMessage>,
    /// Messages that reached every subscriber before the next was sent.
    pub complete: u32,
    /// When the driver saw the last complete message at every subscriber.
    pub last_read: Option<Instant>,
}

/// One lock-step message: who published it, whom it had to reach, who reported it.
#[derive(Debug)]
pub struct SentMessage {
    pub origin: u32,
    pub seq: u64,
    pub receivers: Vec<u32>,
    /// `(receiver, receive ns)` from the receivers' `delivered` events.
    pub delivered: Vec<(u32, u64)>,
}
