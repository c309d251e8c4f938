//! The frame of a run record: what ran, where, with which outcome, and its phases. The
//! figures are in [`super::summary`], the nodes in [`super::node`], the features' sections
//! in [`super::sections`].

use super::node::NodeRecord;
use super::sections::Sections;
use super::summary::{GroupPair, Summary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schema of `run.json`. 2: the features' sections are typed, under `sections` (schema 1
/// kept them as an untyped `extra` map of the same content; [`super::store::read_record`] reads it).
pub const RECORD_SCHEMA: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: u32,
    pub run_id: String,
    pub plan_name: String,
    pub plan_file: String,
    /// The command line that produced the run.
    pub command: Vec<String>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_s: f64,
    pub runner: String,
    pub params: BTreeMap<String, serde_json::Value>,
    pub versions: Versions,
    pub host: HostFacts,
    pub outcome: Outcome,
    pub summary: Summary,
    pub assertions: Vec<AssertionOutcome>,
    pub phases: Vec<PhaseRecord>,
    /// Delivery and latency between groups (origin group → receiver group).
    pub group_pairs: Vec<GroupPair>,
    pub nodes: Vec<NodeRecord>,
    /// The sections features add (network, churn, traces …); each absent without its feature.
    #[serde(default, skip_serializing_if = "Sections::is_empty")]
    pub sections: Sections,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Versions {
    pub testbed: String,
    pub node_implementations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: u32,
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Workload completed and every assertion held.
    Passed,
    /// Workload completed but an assertion failed.
    AssertionFailed,
    /// A node crashed, hung or misbehaved.
    NodeFailed,
    /// The plan's timeout was reached.
    Timeout,
    /// Stopped by SIGINT/SIGTERM.
    Interrupted,
    /// The orchestrator could not carry out the run (e.g. a launch failed).
    Error,
}

impl Status {
    /// Exit code of `orchestrator run` for this status.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Passed => 0,
            Status::AssertionFailed => 1,
            Status::NodeFailed => 2,
            Status::Timeout => 3,
            Status::Interrupted => 130,
            Status::Error => 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    /// Why it did not pass, one line each, naming nodes where nodes are the cause.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssertionOutcome {
    pub assertion: String,
    pub actual: Option<f64>,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub index: usize,
    pub kind: String,
    pub started_ms: f64,
    pub duration_ms: f64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
