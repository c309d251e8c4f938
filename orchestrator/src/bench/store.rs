//! `bench.json`: the bench as it goes. Rewritten atomically after every finished run, so an
//! interrupted or crashed bench loses at most the run in progress and `--resume` continues
//! it. Every report of the bench (bench.md, report.html, bench.csv, charts) is rendered from
//! this file alone.

use super::matrix::{Cell, Slot};
use crate::record::store::write_json;
use crate::record::{HostFacts, RunRecord, Status};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use testbed_contract::plan::Matrix;

pub const BENCH_SCHEMA: u32 = 1;
pub const BENCH_FILE: &str = "bench.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a bench record: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has bench schema {found}; this orchestrator reads schema {BENCH_SCHEMA}")]
    Schema { path: PathBuf, found: u32 },
    #[error("writing {path}: {message}")]
    Write { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchRecord {
    pub schema: u32,
    pub plan_name: String,
    pub plan_file: String,
    /// The plan file as read when the bench started; `--resume` refuses a changed plan.
    pub plan_text: String,
    /// `--set` overrides applied to every run.
    pub overrides: BTreeMap<String, serde_json::Value>,
    /// The matrix as run (after `--iterations`/`--warmup`).
    pub matrix: Matrix,
    pub cells: Vec<Cell>,
    pub command: Vec<String>,
    pub started_at: String,
    pub testbed_version: String,
    pub host: HostFacts,
    /// Wall time spent running, summed over the sessions (a resume adds its own).
    pub wall_s: f64,
    /// Every scheduled run has a result.
    pub complete: bool,
    pub runs: Vec<BenchRun>,
}

/// One finished run: its outcome and figures. A failed run is kept (it counts in the failure
/// rate); an interrupted run is not saved and runs again on `--resume`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchRun {
    pub cell: usize,
    pub iteration: u32,
    pub warmup: bool,
    pub run_id: String,
    /// The run's folder, relative to the bench folder.
    pub dir: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub started_at: String,
    /// The machine's 1-minute load average when the run started (other work slows runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_avg: Option<f64>,
    pub figures: Figures,
}

/// The 1-minute load average (`/proc/loadavg`), where the system has one.
pub fn load_avg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl BenchRun {
    pub fn slot(&self) -> Slot {
        Slot {
            warmup: self.warmup,
            cell: self.cell,
            iteration: self.iteration,
        }
    }

    /// Counted as a failure in the failure rate: anything but a pass.
    pub fn failed(&self) -> bool {
        self.status != Status::Passed
    }

    /// Failed by the reference benchmark's rule: over [`REFERENCE_LIMIT_S`] of workload span,
    /// or no complete workload (it hung, or failed otherwise).
    pub fn failed_by_reference(&self) -> bool {
        self.failed()
            || self
                .figures
                .workload_span_s
                .is_none_or(|s| s > REFERENCE_LIMIT_S)
    }

    /// The workload ran to its end (passed, or only an assertion failed), so its figures
    /// describe a whole run and enter the medians.
    pub fn completed(&self) -> bool {
        matches!(self.status, Status::Passed | Status::AssertionFailed)
    }
}

/// The figures of one run that a bench compares (from the run's `Summary`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    /// Wall time of the whole run: launch to last process reaped.
    pub duration_s: f64,
    pub launch_to_ready_ms: Option<f64>,
    pub nodes: u32,
    pub nodes_failed: u32,
    pub messages_published: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub delivery_ratio: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Median over nodes of each node's peak RSS.
    pub peak_rss_node_bytes: Option<f64>,
    /// Sum over nodes of each node's peak RSS.
    pub peak_rss_total_bytes: Option<f64>,
    /// CPU time (user + system) of all nodes together.
    pub cpu_total_s: Option<f64>,
    /// Duplicate copies the pubsub router received and dropped, per delivered message (absent
    /// where the router does not report them, as floodsub's does not).
    pub duplicates_per_delivery: Option<f64>,
    /// Transport bytes received by all nodes, per delivered message: the cost of a delivery
    /// including duplicates and control traffic, comparable across routers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in_per_delivery: Option<f64>,
    /// The host's CPU was saturated during the measurement window: the run's latencies
    /// describe the machine, not the protocol (absent where the host was not sampled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_saturated: Option<bool>,
    /// Lock-step plans: the run's workload span, first workload phase to the last lock-step
    /// message at every subscriber (the run record's `sections.lockstep.workload_span_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_span_s: Option<f64>,
}

/// The reference benchmark's limit: a run whose test takes longer failed by its rule.
pub const REFERENCE_LIMIT_S: f64 = 3.0;

impl Figures {
    pub fn from_record(r: &RunRecord) -> Figures {
        let s = &r.summary;
        let rss = (s.peak_rss_bytes.count > 0).then_some(s.peak_rss_bytes);
        let cpu = (s.cpu_s.count > 0).then_some(s.cpu_s);
        let per_delivery = |v: Option<u64>| {
            v.filter(|_| s.delivered > 0)
                .map(|v| v as f64 / s.delivered as f64)
        };
        Figures {
            duration_s: r.duration_s,
            launch_to_ready_ms: s.launch_to_ready_ms,
            nodes: s.nodes,
            nodes_failed: s.nodes_failed,
            messages_published: s.messages_published,
            expected_deliveries: s.expected_deliveries,
            delivered: s.delivered,
            delivery_ratio: s.delivery_ratio,
            latency_p50_ms: s.latency.map(|l| l.p50_ms),
            latency_p99_ms: s.latency.map(|l| l.p99_ms),
            peak_rss_node_bytes: rss.map(|d| d.median),
            peak_rss_total_bytes: rss.map(|d| d.total),
            cpu_total_s: cpu.map(|d| d.total),
            duplicates_per_delivery: s.router_duplicates_per_delivery,
            bytes_in_per_delivery: per_delivery(s.bytes_in),
            host_saturated: s.host_saturated,
            workload_span_s: r
                .sections
                .lockstep
                .as_ref()
                .and_then(|l| l.workload_span_ms)
                .map(|ms| ms / 1e3),
        }
    }
}

impl BenchRecord {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(BENCH_FILE)
    }

    pub fn load(dir: &Path) -> Result<BenchRecord, StoreError> {
        let path = Self::path(dir);
        let bytes = std::fs::read(&path).map_err(|source| StoreError::Read {
            path: path.clone(),
            source,
        })?;
        let schema = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("schema")?.as_u64());
        if let Some(found) = schema.filter(|s| *s != BENCH_SCHEMA as u64) {
            return Err(StoreError::Schema {
                path,
                found: found as u32,
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse { path, source })
    }

    /// Atomic: a crash leaves the previous file or the new one, never half of one.
    pub fn save(&self, dir: &Path) -> Result<(), StoreError> {
        let path = Self::path(dir);
        write_json(&path, self).map_err(|e| StoreError::Write {
            path,
            message: format!("{e:#}"),
        })
    }

    /// The slots that already have a result.
    pub fn done(&self) -> BTreeSet<Slot> {
        self.runs.iter().map(BenchRun::slot).collect()
    }

    /// Recorded (not warm-up) runs of one cell.
    pub fn runs_of(&self, cell: usize) -> impl Iterator<Item = &BenchRun> {
        self.runs
            .iter()
            .filter(move |r| !r.warmup && r.cell == cell)
    }

    pub fn recorded(&self) -> impl Iterator<Item = &BenchRun> {
        self.runs.iter().filter(|r| !r.warmup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_rule_fails_slow_and_incomplete_runs() {
        let run = |status, span: Option<f64>| BenchRun {
            cell: 0,
            iteration: 0,
            warmup: false,
            run_id: "r".into(),
            dir: "runs/r".into(),
            status,
            reasons: vec![],
            started_at: String::new(),
            load_avg: None,
            figures: Figures {
                workload_span_s: span,
                ..Figures::default()
            },
        };
        assert!(!run(Status::Passed, Some(2.9)).failed_by_reference());
        assert!(run(Status::Passed, Some(3.1)).failed_by_reference());
        assert!(run(Status::NodeFailed, Some(1.0)).failed_by_reference());
        assert!(run(Status::NodeFailed, None).failed_by_reference());
        assert!(run(Status::Passed, None).failed_by_reference());
    }
}
