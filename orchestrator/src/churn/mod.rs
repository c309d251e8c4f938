//! The churn simulator (docs/simulator.md): a workload phase in which peers, topics and
//! friendships come and go on real node processes, as in the reference simulator.
//!
//! Follow it in order: [`schedule`] computes the whole event sequence from the plan and seed
//! before anything starts (a pure function, part of the run's spec); [`executor`] applies it
//! to the live fleet at each heartbeat — launching and stopping processes through the
//! [`launcher`], dialling the peers the [`discovery`] service names, subscribing and
//! publishing — prints the live line, and keeps the orchestrator's own record of what each
//! node did ([`crate::record::churn_log`], saved as `events.jsonl`). The figures count the
//! deliveries per delivery window ([`crate::figures::churn`]) and the report renders them
//! ([`crate::report::sections::churn`]). A plan's churn phase is checked with the plan
//! ([`crate::plan::validate`]).

pub mod discovery;
pub mod executor;
pub mod launcher;
pub mod schedule;
mod tally;

pub use schedule::{Prepared, prepare};
