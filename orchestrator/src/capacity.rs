//! `orchestrator capacity PLAN`: the largest fleet this machine runs for a plan with the host
//! unsaturated and every message delivered. Bisection on one plan parameter (`nodes` unless
//! `--param` names another, e.g. a rate): each probe is a whole `orchestrator run` through
//! [`crate::run::run_plan`] with the parameter set, kept in the results folder, and its
//! figures are printed as it ends. `capacity.json` beside the probes holds every probe and
//! the answer, rewritten after each probe, so an interrupted search keeps what it learned.

use crate::plan;
use crate::record::{RunRecord, Status};
use crate::run::{self, RunOptions};
use crate::runner::program::Programs;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::sync::watch;

#[derive(Debug, clap::Args)]
pub struct CapacityArgs {
    /// The plan; its parameter `--param` is what the search varies.
    pub plan: PathBuf,
    /// The plan parameter searched (an integer: a fleet size, or a rate).
    #[arg(long, default_value = "nodes")]
    pub param: String,
    /// The smallest value tried (default: the smallest value from 10 up at which the plan is
    /// valid, e.g. 100 when nodes 0..100 publish).
    #[arg(long)]
    pub min: Option<u64>,
    /// The largest value tried.
    #[arg(long, default_value_t = 2000)]
    pub max: u64,
    /// Stop when the bracket is this narrow (the answer is within this of the true limit).
    #[arg(long, default_value_t = 50)]
    pub resolution: u64,
    /// Override another plan parameter for every probe: `--set size=1024` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Where results go (results/<plan>/capacity-<timestamp>/ below it).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// The Rust node binary (default: pubsub-node beside this executable, or $PUBSUB_NODE_BIN).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// Folder holding the Go and JS nodes.
    #[arg(long)]
    pub interop_dir: Option<PathBuf>,
    /// No progress output from the runs (probe lines are still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

/// One probe: the value tried and the figures that decided it.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub value: u64,
    /// Delivery 1.0, host unsaturated, and the run passed (or failed only an assertion).
    pub ok: bool,
    pub status: Status,
    pub delivery_ratio: Option<f64>,
    pub host_saturated: Option<bool>,
    /// Share of the measurement window the host was saturated in.
    pub saturated_share: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub duration_s: f64,
    /// The run's folder, relative to the capacity folder.
    pub dir: String,
}

impl Probe {
    pub fn of(value: u64, r: &RunRecord, dir: String) -> Probe {
        let s = &r.summary;
        let ran = matches!(r.outcome.status, Status::Passed | Status::AssertionFailed);
        Probe {
            value,
            ok: ran && s.delivery_ratio == Some(1.0) && s.host_saturated == Some(false),
            status: r.outcome.status,
            delivery_ratio: s.delivery_ratio,
            host_saturated: s.host_saturated,
            saturated_share: r.sections.host_load.as_ref().map(|h| h.saturated_share),
            latency_p50_ms: s.latency.map(|l| l.p50_ms),
            latency_p99_ms: s.latency.map(|l| l.p99_ms),
            duration_s: r.duration_s,
            dir,
        }
    }

    fn line(&self) -> String {
        let o = |v: Option<f64>, d: usize| v.map_or("n/a".into(), |v| format!("{v:.d$}"));
        format!(
            "{:>6}  {:<4}  delivery {}  saturated {}  p50 {} ms  p99 {} ms  {:.1} s  {:?}",
            self.value,
            if self.ok { "ok" } else { "over" },
            o(self.delivery_ratio, 5),
            o(self.saturated_share.map(|v| v * 100.0), 0) + " %",
            o(self.latency_p50_ms, 1),
            o(self.latency_p99_ms, 1),
            self.duration_s,
            self.status
        )
    }
}

/// What `capacity.json` holds.
#[derive(Debug, Serialize)]
pub struct CapacityRecord {
    pub plan_file: String,
    pub param: String,
    pub min: u64,
    pub max: u64,
    pub resolution: u64,
    /// The largest value that was ok, when one was; with `limit`, the answer.
    pub answer: Option<u64>,
    /// The smallest value that was not ok, when one was tried.
    pub limit: Option<u64>,
    pub interrupted: bool,
    pub probes: Vec<Probe>,
}

/// The next value to try, given the largest ok and the smallest failed so far; None when the
/// bracket is narrow enough (or the ends answered it). Pure: the search's whole logic.
pub fn next_value(
    ok: Option<u64>,
    over: Option<u64>,
    min: u64,
    max: u64,
    resolution: u64,
) -> Option<u64> {
    match (ok, over) {
        (None, None) => Some(min),
        (None, Some(_)) => None, // the smallest already fails
        (Some(lo), None) if lo >= max => None,
        (Some(_), None) => Some(max),
        (Some(lo), Some(hi)) => (hi - lo > resolution.max(1)).then(|| lo + (hi - lo) / 2),
    }
}

pub async fn run(args: CapacityArgs, interrupt: watch::Receiver<bool>) -> Result<ExitCode> {
    let raw = std::fs::read_to_string(&args.plan)
        .with_context(|| format!("reading {}", args.plan.display()))?;
    let mut overrides: BTreeMap<String, serde_json::Value> = args
        .set
        .iter()
        .map(|s| plan::parse_override(s).map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let min = match args.min {
        Some(m) => m,
        None => smallest_valid(&args, &raw, &overrides),
    };
    anyhow::ensure!(
        min >= 1 && min <= args.max,
        "--min must be at least 1 and not above --max"
    );
    let args = CapacityArgs {
        min: Some(min),
        ..args
    };
    // Validated once at the smallest value: a bad plan fails before anything runs.
    overrides.insert(args.param.clone(), min.into());
    let first = plan::load_text(&args.plan, &raw, &overrides)?;
    anyhow::ensure!(
        first.plan.params.contains_key(&args.param),
        "{}: the plan has no parameter `{}` to search (see its `params:`)",
        args.plan.display(),
        args.param
    );
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let dir = args
        .results
        .join(&first.plan.name)
        .join(format!("capacity-{stamp}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let programs = Programs::discover(args.node_bin.clone(), args.interop_dir.clone());
    let mut rec = CapacityRecord {
        plan_file: args.plan.display().to_string(),
        param: args.param.clone(),
        min,
        max: args.max,
        resolution: args.resolution,
        answer: None,
        limit: None,
        interrupted: false,
        probes: Vec::new(),
    };
    eprintln!(
        "capacity of {} on this machine: bisection on `{}` in [{}, {}] to within {}",
        args.plan.display(),
        args.param,
        min,
        args.max,
        args.resolution
    );
    while let Some(value) = next_value(rec.answer, rec.limit, min, args.max, args.resolution) {
        overrides.insert(args.param.clone(), value.into());
        let loaded = plan::load_text(&args.plan, &raw, &overrides)?;
        let opts = RunOptions {
            results_root: dir.clone(),
            programs: programs.clone(),
            command: std::env::args().collect(),
            quiet: args.quiet,
            run_id: Some(format!("{}-{value}", args.param)),
            runner: None,
            control_listen: None,
        };
        let out = run::run_plan(&loaded, &opts, interrupt.clone())
            .await
            .with_context(|| format!("probe {}={value}", args.param))?;
        if out.record.outcome.status == Status::Interrupted {
            rec.interrupted = true;
            break;
        }
        let rel = out.dir.strip_prefix(&dir).unwrap_or(&out.dir);
        let probe = Probe::of(value, &out.record, rel.display().to_string());
        eprintln!("{}", probe.line());
        if probe.ok {
            rec.answer = Some(value);
        } else {
            rec.limit = Some(value);
        }
        rec.probes.push(probe);
        write_record(&dir, &rec)?;
    }
    write_record(&dir, &rec)?;
    print_answer(&rec, &dir);
    Ok(if rec.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// The smallest value in [10, max] at which the plan validates (doubling, then bisecting
/// between the last invalid and the first valid value), or 10 when none does: the probe at
/// `min` then reports the plan's own error.
fn smallest_valid(
    args: &CapacityArgs,
    raw: &str,
    overrides: &BTreeMap<String, serde_json::Value>,
) -> u64 {
    let valid = |v: u64| {
        let mut o = overrides.clone();
        o.insert(args.param.clone(), v.into());
        plan::load_text(&args.plan, raw, &o).is_ok()
    };
    let floor = 10.min(args.max);
    let (mut bad, mut good) = (None, floor);
    while !valid(good) {
        if good >= args.max {
            return floor;
        }
        bad = Some(good);
        good = (good * 2).min(args.max);
    }
    let Some(mut bad) = bad else { return good };
    while good - bad > 1 {
        let mid = bad + (good - bad) / 2;
        if valid(mid) { good = mid } else { bad = mid }
    }
    good
}

fn write_record(dir: &Path, rec: &CapacityRecord) -> Result<()> {
    let path = dir.join("capacity.json");
    std::fs::write(&path, serde_json::to_string_pretty(rec)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

fn print_answer(rec: &CapacityRecord, dir: &Path) {
    let p = &rec.param;
    let best = rec
        .answer
        .and_then(|a| rec.probes.iter().find(|x| x.value == a));
    match (best, rec.limit) {
        (Some(b), limit) => {
            println!(
                "capacity: {p} = {} (delivery 1.0, host unsaturated){}",
                b.value,
                limit.map_or(format!("; {} was not tried above it", rec.max), |l| {
                    format!("; {p} = {l} was not")
                })
            );
            println!("  {}", b.line());
        }
        (None, Some(l)) => println!(
            "capacity: below {p} = {l}: even the smallest probe was not ok (see its report)"
        ),
        (None, None) => println!("capacity: no probe finished"),
    }
    if rec.interrupted {
        println!("  interrupted: the answer is from the probes that finished");
    }
    println!("{}", dir.join("capacity.json").display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_narrows_the_bracket_and_stops() {
        assert_eq!(next_value(None, None, 10, 100, 5), Some(10));
        assert_eq!(next_value(None, Some(10), 10, 100, 5), None);
        assert_eq!(next_value(Some(10), None, 10, 100, 5), Some(100));
        assert_eq!(next_value(Some(100), None, 10, 100, 5), None);
        assert_eq!(next_value(Some(10), Some(100), 10, 100, 5), Some(55));
        assert_eq!(next_value(Some(50), Some(55), 10, 100, 5), None);
        // Every ok below every failure: the search converges on the limit.
        let limit = 37;
        let (mut ok, mut over, mut n) = (None, None, 0);
        while let Some(v) = next_value(ok, over, 10, 100, 2) {
            if v <= limit {
                ok = Some(v)
            } else {
                over = Some(v)
            }
            n += 1;
        }
        assert!(ok.unwrap() <= limit && over.unwrap() > limit);
        assert!(
            over.unwrap() - ok.unwrap() <= 2 && n <= 10,
            "{ok:?} {over:?} {n}"
        );
    }
}
