//! The run record (`run.json`): everything a run measured and what produced it. Reports are
//! rendered from this alone, so `orchestrator report DIR` can re-render without re-running.
//!
//! - [`run_record`]: the record's frame (identity, outcome, phases); [`node`]: each node;
//! - [`summary`]: the fleet's figures (computed by [`crate::figures`]);
//! - [`sections`]: the typed sections features add (network, churn, traces …);
//! - [`drive_log`] and [`churn_log`]: what the run learned while it went, the input of the
//!   figures (`events.jsonl` is the churn log's events);
//! - [`store`]: the results folder, and reading `run.json` back (older schemas included).
//!
//! This file only gathers the parts: the parts import each other, never this file.

pub mod churn_log;
pub mod drive_log;
pub mod node;
pub mod outside;
pub mod run_record;
pub mod sections;
pub mod store;
pub mod summary;

pub use node::{FinishInfo, NodeRecord, NodeStatus};
pub use outside::OutsideSamples;
pub use run_record::{
    AssertionOutcome, HostFacts, Outcome, PhaseRecord, RECORD_SCHEMA, RunRecord, Status, Versions,
};
pub use sections::Sections;
pub use summary::{
    AxisEvent, Cut, DeliveryBucket, Dist, GroupPair, Latency, PairOverTime, PublishLag,
    ReceivedOverTime, Summary,
};
