//! `orchestrator conformance --impl NAME`: drives one node implementation through the node
//! contract (docs/node-contract.md) with a scripted orchestrator — real processes, real
//! control channels (TCP and a Unix socket), real libp2p between two nodes under test and a
//! Rust reference node — and names every check it fails.
//!
//! The script:
//! 1. **Main session**: nodes 0 and 1 run the implementation under test, node 2 is the Rust
//!    reference. Each has its own control listener, so every line is attributed to exactly
//!    one process. Hello, a command before the welcome, welcome, listening, malformed input,
//!    unknown ops, report, connect (empty, failing, real), subscribe with `wait_mesh`, a
//!    publish nobody can receive, publishing by all three while a report runs, unsubscribe,
//!    finish (node 0 and the reference) and abort (node 1); then the results are checked
//!    field by field and against each other: seen-sets must be exact both ways and the
//!    latency histograms must count exactly the messages of each origin.
//! 2. **Side processes**, concurrently: missing environment, an unreachable control address,
//!    a Unix socket control channel ended by SIGTERM, welcomes with another protocol or index,
//!    an abort before the welcome, and the orchestrator closing the channel.
//!
//! Every check of [`CATALOGUE`] appears in the report, passed, failed (with what was wrong,
//! naming the node) or skipped (with the failure that kept it from running).
//!
//! This file only gathers the parts. Follow a check from [`run()`]: [`catalogue`] lists the checks, [`harness`] runs one process and
//! reads its control channel, [`session`] is the main script and [`side`] the side
//! processes, [`checks`] judges what they saw, by group, and [`report`] collects the verdicts
//! into the checklist; [`args`] is the command line.

pub mod args;
pub mod catalogue;
mod checks;
mod ctx;
mod harness;
pub mod report;
mod run;
mod session;
mod side;

pub use args::{ConformanceArgs, ImplArg, cli};
pub use catalogue::CATALOGUE;
pub use report::{CheckResult, CheckStatus, ConformanceReport};
pub use run::{ConformanceOptions, run};
