//! One run of a plan, end to end, as a pipeline — each step in its own file:
//!
//! 1. **spec** ([`crate::spec`]): everything decided before anything starts, from the plan
//!    (validated with its overrides) and the options;
//! 2. **launch** ([`launch`]): runner, results folder, telemetry, control server, processes;
//! 3. **drive** ([`crate::workload`]): handshake, connect, every workload phase;
//! 4. **collect** ([`collect`]): every node's result, every process reaped — also when the run
//!    failed, timed out or was interrupted — and the run's ending as status and reasons;
//! 5. **figures** ([`crate::figures`]): pure functions of the node records and the drive log;
//! 6. **record** ([`record`]): run.json, with the telemetry's sections;
//! 7. **report** ([`crate::report`]): report.md and report.html.

pub mod collect;
pub mod launch;
pub mod record;

pub use crate::spec::{RunOptions, node_seed};

use crate::churn::launcher::Launcher;
use crate::fleet::Stop;
use crate::record::RunRecord;
use crate::record::drive_log::DriveLog;
use crate::spec::RunSpec;
use crate::workload::Driver;
use anyhow::Result;
use launch::Live;
use std::path::PathBuf;
use tokio::sync::watch;

/// The result of [`run_plan`]: where it was written and what it says.
pub struct RunOutput {
    pub dir: PathBuf,
    pub record: RunRecord,
    /// Files of the results folder that could not be written (each with its error); every
    /// other file was written. Non-empty makes `orchestrator run` exit 4 (see `exit.rs`).
    pub write_errors: Vec<String>,
}

/// Runs `loaded` once and writes everything it measured into
/// `<results>/<plan>/<run-id>/`. An `Err` means the run could not start (or its files could
/// not be written); a run that started always ends with a record, whatever happened.
pub async fn run_plan(
    loaded: &crate::plan::LoadedPlan,
    opts: &RunOptions,
    interrupt: watch::Receiver<bool>,
) -> Result<RunOutput> {
    let spec = RunSpec::resolve(loaded, opts)?;
    let linger_stop = interrupt.clone();
    let mut live = launch::launch(&spec, interrupt).await?;
    let (log, drive) = drive(&spec, &mut live).await;
    let collected = collect::collect(&mut live, &drive).await;
    let mut record = record::build(&spec, &mut live, &log, &drive, collected);
    drop(live.server);
    // Every node is reaped: all spans are in. Adds the `traces` and `metrics` sections.
    let mut write_errors = live
        .telemetry
        .finish(&live.dir.path, &mut record, linger_stop)
        .await;
    // What could not be written before run.json is said in it.
    record
        .outcome
        .reasons
        .extend(write_errors.iter().map(|e| format!("not written: {e}")));
    write_errors.extend(record::write(&live.dir, &record, &log));
    Ok(RunOutput {
        dir: live.dir.path,
        record,
        write_errors,
    })
}

/// Step 3: the workload, unless the launch failed; the churn phase gets a launcher that
/// starts new peers exactly as the fleet was started.
async fn drive(spec: &RunSpec, live: &mut Live) -> (DriveLog, Result<(), Stop>) {
    if live.launch_error.is_some() {
        return (DriveLog::default(), Err(Stop::Fault));
    }
    let launcher = spec
        .churn
        .is_some()
        .then(|| Launcher::new(live.runner.as_mut(), spec, &live.wiring));
    Driver::new(spec, &mut live.fleet, &live.progress, live.t0, launcher)
        .run()
        .await
}
