//! Runs every check: the main session and the side processes at once, their verdicts merged
//! into the report.

use super::ctx::Ctx;
use super::report::{Checks, ConformanceReport};
use super::{session, side};
use crate::runner::program::{NodeProgram, Programs};
use anyhow::{Context, Result};
use std::path::PathBuf;
use testbed_contract::plan::Implementation;
use tokio::time::Instant;

/// What to check.
#[derive(Debug, Clone)]
pub struct ConformanceOptions {
    pub implementation: Implementation,
    /// Go: the go-libp2p-pubsub version (selects the binary as a plan's `impl_version` does).
    pub impl_version: Option<String>,
    /// Where the Rust reference node and the implementations' programs are.
    pub programs: Programs,
    /// Check this program instead of the implementation's own (a wrapper, a test double).
    pub program: Option<NodeProgram>,
    /// Node logs go here (default: a fresh folder in the temporary directory).
    pub log_dir: Option<PathBuf>,
    /// Keep the logs of a passing check (a failing one always keeps them).
    pub keep_logs: bool,
}

/// Runs every check and returns the report (an `Err` only when the check itself cannot run,
/// e.g. the program does not exist).
pub async fn run(opts: &ConformanceOptions) -> Result<ConformanceReport> {
    let started = Instant::now();
    let program = match &opts.program {
        Some(p) => p.clone(),
        None => opts
            .programs
            .resolve(opts.implementation, opts.impl_version.as_deref())
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let reference = opts
        .programs
        .resolve(Implementation::Rust, None)
        .map_err(|e| anyhow::anyhow!("the Rust reference node: {e}"))?;
    let logs = match &opts.log_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "pubsub-testbed-conformance-{}-{}-{}",
            opts.implementation.as_str(),
            std::process::id(),
            chrono::Utc::now().format("%H%M%S%3f")
        )),
    };
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let ctx = Ctx {
        implementation: opts.implementation,
        impl_version: opts.impl_version.clone(),
        program: program.clone(),
        reference: reference.clone(),
        logs: logs.clone(),
    };

    let mut checks = Checks::default();
    let (main, side) = tokio::join!(session::main_session(&ctx), side::side_processes(&ctx));
    let said_version = main.1;
    for c in [main.0, side] {
        for (id, rs) in c.results {
            checks.results.entry(id).or_default().extend(rs);
        }
    }
    let report = ConformanceReport {
        implementation: opts.implementation.as_str().to_string(),
        program: program.to_string(),
        impl_version: said_version,
        reference: reference.to_string(),
        checks: checks.into_list(),
        logs: logs.clone(),
        duration_s: started.elapsed().as_secs_f64(),
    };
    if report.passed() && !opts.keep_logs && opts.log_dir.is_none() {
        let _ = std::fs::remove_dir_all(&logs);
    }
    Ok(report)
}
