//! The orchestrator of pubsub-testbed as a library: the `orchestrator` binary is a thin
//! command line over it, and the integration tests call it directly.
//!
//! Follow a run from [`run::run_plan`], a pipeline: the [`plan`] is read and checked with
//! the command line's overrides and resolved into a [`spec`]; the run is launched through a
//! [`runner`] while the [`control`] server talks to the [`fleet`]; the [`workload`] drives
//! the phases (and the [`churn`] simulator); the [`figures`] are computed into a [`record`],
//! and the [`report`] renders it. CONTRIBUTING.md has the reading order and the layers these
//! modules form (checked by `tests/architecture.rs`).

pub mod bench;
pub mod capacity;
pub mod chart;
pub mod churn;
pub mod cli;
pub mod clock_sync;
pub mod conformance;
pub mod control;
pub mod exit;
pub mod figures;
pub mod fleet;
pub mod host;
pub mod host_load;
#[cfg(feature = "k8s")]
pub mod k8s;
pub mod plan;
pub mod progress;
pub mod record;
pub mod report;
pub mod run;
pub mod runner;
pub mod sampler;
pub mod signals;
pub mod spec;
pub mod telemetry;
pub mod topology;
pub mod workload;
