//! `orchestrator bench`: runs every cell of a plan's matrix `iterations` times, one fresh
//! fleet per run (through [`crate::run::run_plan`], so a bench run is exactly an
//! `orchestrator run` with the cell's parameters), saves each finished run at once to
//! `bench.json`, and renders the bench reports at the end. `--resume DIR` continues where an
//! interrupted or crashed bench stopped.

use super::matrix::{Cell, Slot, expand, schedule, value_text};
use super::render;
use super::store::{BENCH_SCHEMA, BenchRecord, BenchRun, Figures};
use crate::host;
use crate::plan::{self, LoadedPlan};
use crate::progress::RunsProgress;
use crate::record::Status;
use crate::run::{self, RunOptions};
use crate::runner::program::Programs;
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use testbed_contract::plan::Matrix;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "{plan} has no `matrix:` section, so there is nothing to sweep; add one (see docs/plan-format.md) or run it once with `orchestrator run`"
    )]
    NoMatrix { plan: PathBuf },
    #[error(
        "{plan} changed since the bench in {dir} started; resuming would mix two plans in one result. Start a new bench, or restore the plan text saved in bench.json (`plan_text`)"
    )]
    PlanChanged { plan: PathBuf, dir: PathBuf },
    #[error(
        "the --set values differ from the ones the bench in {dir} started with ({was}); resume with the same ones"
    )]
    OverridesChanged { dir: PathBuf, was: String },
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub plan: PathBuf,
    /// `--set` values, applied to every run (a cell's own values win).
    pub overrides: BTreeMap<String, Value>,
    /// New benches go to `<results_root>/<plan>/<bench id>/`.
    pub results_root: PathBuf,
    /// Continue the bench in this folder.
    pub resume: Option<PathBuf>,
    pub programs: Programs,
    pub command: Vec<String>,
    pub quiet: bool,
    /// Replace the plan's `matrix.iterations` / `matrix.warmup` (on resume: may add iterations).
    pub iterations: Option<u32>,
    pub warmup: Option<u32>,
    /// Folder name of a new bench (default `bench-<timestamp>`).
    pub bench_id: Option<String>,
}

pub struct BenchOutput {
    pub dir: PathBuf,
    pub record: BenchRecord,
    /// Stopped by SIGINT/SIGTERM before every run was done.
    pub interrupted: bool,
}

pub async fn run_bench(
    opts: &BenchOptions,
    interrupt: watch::Receiver<bool>,
) -> Result<BenchOutput> {
    let raw = std::fs::read_to_string(&opts.plan)
        .with_context(|| format!("reading {}", opts.plan.display()))?;
    let base = plan::load_text(&opts.plan, &raw, &opts.overrides)?;
    let Some(mut matrix) = base.plan.matrix.clone() else {
        return Err(BenchError::NoMatrix {
            plan: opts.plan.clone(),
        }
        .into());
    };
    if let Some(i) = opts.iterations {
        matrix.iterations = i.max(1);
    }
    if let Some(w) = opts.warmup {
        matrix.warmup = w;
    }

    let (dir, mut rec) = open(opts, &raw, &base.plan.name, &matrix)?;

    // Every cell's plan is loaded and checked before anything runs.
    let plans: Vec<LoadedPlan> = rec
        .cells
        .iter()
        .map(|c| cell_plan(&opts.plan, &raw, &rec.overrides, c))
        .collect::<Result<_>>()?;
    let slots = schedule(rec.cells.len(), rec.matrix.iterations, rec.matrix.warmup);
    let done = rec.done();
    let todo: Vec<Slot> = slots
        .iter()
        .copied()
        .filter(|s| !done.contains(s))
        .collect();
    let total = slots.len() as u64;

    let progress = RunsProgress::new(opts.quiet, total, total - todo.len() as u64);
    if !opts.quiet {
        progress.line(format!(
            "bench {}: {} cells × {} iterations (+{} warm-up) = {} runs, {} to go; results in {}",
            rec.plan_name,
            rec.cells.len(),
            rec.matrix.iterations,
            rec.matrix.warmup,
            total,
            todo.len(),
            dir.display()
        ));
    }
    let runs_root = RunsRoot::new(&dir.join("runs"), &rec.plan_name)?;
    let wall_before = rec.wall_s;
    let session = Instant::now();
    let mut interrupted = false;
    for slot in todo {
        if *interrupt.borrow() {
            interrupted = true;
            break;
        }
        let Some(run) = run_one(
            opts,
            &rec,
            slot,
            &plans[slot.cell],
            &runs_root,
            &progress,
            &interrupt,
        )
        .await?
        else {
            interrupted = true;
            break;
        };
        rec.runs.push(run);
        rec.wall_s = wall_before + session.elapsed().as_secs_f64();
        rec.save(&dir)?;
        progress.advance();
    }
    progress.finish();
    let done = rec.done();
    rec.complete = slots.iter().all(|s| done.contains(s));
    rec.wall_s = wall_before + session.elapsed().as_secs_f64();
    rec.save(&dir)?;
    // Rendered from the saved file, exactly as `orchestrator report DIR` does (numbers read
    // back from JSON may differ from the in-memory ones in the last bit).
    let rec = BenchRecord::load(&dir)?;
    render::write_all(&dir, &rec)?;
    Ok(BenchOutput {
        dir,
        record: rec,
        interrupted,
    })
}

/// One run of the bench, through [`run::run_plan`]; None when it was interrupted (it is not
/// saved and runs again on `--resume`).
async fn run_one(
    opts: &BenchOptions,
    rec: &BenchRecord,
    slot: Slot,
    plan: &LoadedPlan,
    runs_root: &RunsRoot,
    progress: &RunsProgress,
    interrupt: &watch::Receiver<bool>,
) -> Result<Option<BenchRun>> {
    let run_id = slot.run_id(&rec.cells);
    let cell = &rec.cells[slot.cell];
    progress.current(&format!(
        "{}{}",
        if slot.warmup { "warm-up " } else { "" },
        cell.key()
    ));
    let run_dir = runs_root.real.join(&rec.plan_name).join(&run_id);
    if run_dir.exists() {
        // Left by a run that was interrupted or crashed: it runs again from scratch.
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    let ropts = RunOptions {
        results_root: runs_root.path.clone(),
        programs: opts.programs.clone(),
        command: opts.command.clone(),
        quiet: true,
        run_id: Some(run_id.clone()),
        runner: None,
        control_listen: None,
    };
    let started_at = chrono::Utc::now().to_rfc3339();
    let load_avg = super::store::load_avg();
    let out = run::run_plan(plan, &ropts, interrupt.clone())
        .await
        .with_context(|| format!("run {run_id} ({})", cell.key()))?;
    let status = out.record.outcome.status;
    if status == Status::Interrupted {
        return Ok(None);
    }
    if status != Status::Passed {
        progress.line(format!(
            "  {run_id}: {status:?}{}",
            out.record
                .outcome
                .reasons
                .first()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        ));
    }
    Ok(Some(BenchRun {
        cell: slot.cell,
        iteration: slot.iteration,
        warmup: slot.warmup,
        run_id,
        dir: format!(
            "runs/{}/{}",
            rec.plan_name,
            out.dir.file_name().unwrap_or_default().to_string_lossy()
        ),
        status,
        reasons: out.record.outcome.reasons.clone(),
        started_at,
        load_avg,
        figures: Figures::from_record(&out.record),
    }))
}

/// The bench folder and its record: the one to resume (checked against the plan and the
/// `--set` values), or a new one.
fn open(
    opts: &BenchOptions,
    raw: &str,
    plan_name: &str,
    matrix: &Matrix,
) -> Result<(PathBuf, BenchRecord)> {
    match &opts.resume {
        Some(dir) => {
            let mut rec = BenchRecord::load(dir)?;
            if rec.plan_text != raw {
                return Err(BenchError::PlanChanged {
                    plan: opts.plan.clone(),
                    dir: dir.clone(),
                }
                .into());
            }
            if !opts.overrides.is_empty() && opts.overrides != rec.overrides {
                return Err(BenchError::OverridesChanged {
                    dir: dir.clone(),
                    was: show(&rec.overrides),
                }
                .into());
            }
            if opts.iterations.is_some() {
                rec.matrix.iterations = matrix.iterations;
            }
            if opts.warmup.is_some() {
                rec.matrix.warmup = matrix.warmup;
            }
            Ok((dir.clone(), rec))
        }
        None => {
            let id = opts
                .bench_id
                .clone()
                .unwrap_or_else(|| format!("bench-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S")));
            let dir = opts.results_root.join(plan_name).join(id);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let cells = expand(matrix);
            let rec = BenchRecord {
                schema: BENCH_SCHEMA,
                plan_name: plan_name.to_string(),
                plan_file: opts.plan.display().to_string(),
                plan_text: raw.to_string(),
                overrides: opts.overrides.clone(),
                matrix: matrix.clone(),
                cells,
                command: opts.command.clone(),
                started_at: chrono::Utc::now().to_rfc3339(),
                testbed_version: env!("CARGO_PKG_VERSION").to_string(),
                host: host::facts(),
                wall_s: 0.0,
                complete: false,
                runs: Vec::new(),
            };
            rec.save(&dir)?;
            Ok((dir, rec))
        }
    }
}

/// The plan of one cell: the plan text with the cell's values (and the `--set` ones).
fn cell_plan(
    path: &Path,
    raw: &str,
    overrides: &BTreeMap<String, Value>,
    cell: &Cell,
) -> Result<LoadedPlan> {
    let mut values = overrides.clone();
    values.extend(cell.params.clone());
    plan::load_text(path, raw, &values).with_context(|| format!("matrix cell {}", cell.key()))
}

/// Where the runs of a bench go: `<bench>/runs/`. A run puts its control socket in its
/// folder, and a Unix socket path has at most 107 bytes; when the folder is too deep for
/// that, the runs go through a short symbolic link in the temp folder (removed at the end),
/// so the files still land in `<bench>/runs/`.
struct RunsRoot {
    /// Passed to `run_plan`.
    path: PathBuf,
    /// The folder itself.
    real: PathBuf,
    link: Option<PathBuf>,
}

/// Longest run folder name a bench makes, plus `/control.sock`, with room to spare.
const RUN_PATH_TAIL: usize = 64;
const SUN_PATH_MAX: usize = 107;

impl RunsRoot {
    fn new(real: &Path, plan_name: &str) -> Result<RunsRoot> {
        std::fs::create_dir_all(real).with_context(|| format!("creating {}", real.display()))?;
        let real =
            std::fs::canonicalize(real).with_context(|| format!("resolving {}", real.display()))?;
        if real.as_os_str().len() + plan_name.len() + RUN_PATH_TAIL <= SUN_PATH_MAX {
            return Ok(RunsRoot {
                path: real.clone(),
                real,
                link: None,
            });
        }
        let link = std::env::temp_dir().join(format!(
            "ptb-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ));
        std::os::unix::fs::symlink(&real, &link)
            .with_context(|| format!("linking {} to {}", link.display(), real.display()))?;
        Ok(RunsRoot {
            path: link.clone(),
            real,
            link: Some(link),
        })
    }
}

impl Drop for RunsRoot {
    fn drop(&mut self) {
        if let Some(l) = &self.link {
            let _ = std::fs::remove_file(l);
        }
    }
}

fn show(m: &BTreeMap<String, Value>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("--set {k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(" ")
}
