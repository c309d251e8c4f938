//! The orchestrator of pubsub-testbed as a library: the `orchestrator` binary is a thin
//! command line over it, and the integration tests call it directly.
//!
//! Follow a run from [`run::run_plan`]: [`plan`] is read and checked, a [`runner`] launches
//! the fleet, the [`control`] server talks to it, [`run::driver`] drives the workload,
//! [`aggregate`] computes the figures into a [`record`], and [`report`] renders it.

pub mod aggregate;
pub mod bench;
pub mod by_implementation;
pub mod chart;
pub mod churn;
pub mod cli;
pub mod conformance;
pub mod control;
pub mod host;
#[cfg(feature = "k8s")]
pub mod k8s;
pub mod plan;
pub mod progress;
pub mod record;
pub mod report;
pub mod results_dir;
pub mod run;
pub mod runner;
pub mod telemetry;
pub mod topology;
