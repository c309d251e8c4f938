//! `orchestrator bench PLAN`: flags and the summary printed at the end.
//! Exit codes: 0 when every scheduled run is done (failed runs are results: they are in the
//! failure rate), 130 when interrupted (continue with `--resume DIR`), 4 on an error, 64 for
//! an invalid plan.

use super::runner::{BenchOptions, run_bench};
use super::store::BenchRecord;
use crate::plan;
use crate::runner::program::Programs;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::sync::watch;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A plan with a `matrix:` section.
    pub plan: PathBuf,
    /// Continue the bench in this folder (skips the runs it already has).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Override a plan parameter for every run: `--set size=1024` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Where results go (results/<plan>/bench-<timestamp>/ below it).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Iterations per cell instead of the plan's `matrix.iterations`.
    #[arg(long)]
    pub iterations: Option<u32>,
    /// Warm-up runs instead of the plan's `matrix.warmup`.
    #[arg(long)]
    pub warmup: Option<u32>,
    /// A first look: 1 iteration per cell, no warm-up (no verdicts: too few runs).
    #[arg(long, conflicts_with_all = ["iterations", "warmup"])]
    pub quick: bool,
    /// Name of the bench folder instead of `bench-<timestamp>`.
    #[arg(long)]
    pub id: Option<String>,
    /// The Rust node binary (default: pubsub-node beside this executable, or $PUBSUB_NODE_BIN).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// Folder holding the Go and JS nodes.
    #[arg(long)]
    pub interop_dir: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

pub async fn run(args: BenchArgs, interrupt: watch::Receiver<bool>) -> Result<ExitCode> {
    let overrides: BTreeMap<String, serde_json::Value> = args
        .set
        .iter()
        .map(|s| plan::parse_override(s).map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let opts = BenchOptions {
        plan: args.plan,
        overrides,
        results_root: args.results,
        resume: args.resume,
        programs: Programs::discover(args.node_bin, args.interop_dir),
        command: std::env::args().collect(),
        quiet: args.quiet,
        iterations: if args.quick { Some(1) } else { args.iterations },
        warmup: if args.quick { Some(0) } else { args.warmup },
        bench_id: args.id,
    };
    let out = run_bench(&opts, interrupt).await?;
    if !args.quiet {
        print_summary(&out.record, &out.dir, out.interrupted);
    }
    Ok(if out.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(rec: &BenchRecord, dir: &std::path::Path, interrupted: bool) {
    let recorded = rec.recorded().count();
    let failed = rec.recorded().filter(|r| r.failed()).count();
    eprintln!(
        "{}: {recorded} runs recorded in {}, {failed} failed ({:.1}%)",
        if interrupted {
            "bench interrupted"
        } else {
            "bench done"
        },
        super::view::hms(rec.wall_s),
        100.0 * failed as f64 / recorded.max(1) as f64
    );
    if interrupted || !rec.complete {
        eprintln!(
            "  continue with: orchestrator bench {} --resume {}",
            rec.plan_file,
            dir.display()
        );
    }
    println!("{}", dir.join(super::render::BENCH_MD).display());
}
