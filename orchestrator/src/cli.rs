//! Command line: parse flags, call into the modules, turn outcomes into exit codes
//! ([`crate::exit`]). `orchestrator run` goes to [`crate::run::run_plan`], `bench` to
//! [`crate::bench`], `conformance` to [`crate::conformance`], `k8s` to `crate::k8s`,
//! `report` to [`crate::report`].

use crate::exit::EXIT_INVALID;
use crate::plan::{self, Overrides, RunnerChoice, TelemetryOverrides};
use crate::record::Status;
use crate::record::store;
use crate::report;
use crate::run::{self, RunOptions};
use crate::runner::program::Programs;
use crate::signals;
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use testbed_contract::plan::Traces;

#[derive(Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "Runs fleets of real libp2p pubsub peers from YAML test plans and reports what they measured."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a plan: launch the fleet, drive the workload, write results and reports.
    Run {
        plan: PathBuf,
        /// Override a plan parameter: `--set hosts=50` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Where results go (results/<plan>/<run-id>/ below it).
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// The Rust node binary (default: pubsub-node beside this executable, or $PUBSUB_NODE_BIN).
        #[arg(long)]
        node_bin: Option<PathBuf>,
        /// Folder holding the Go and JS nodes.
        #[arg(long)]
        interop_dir: Option<PathBuf>,
        /// Fixed run id instead of a timestamp.
        #[arg(long)]
        run_id: Option<String>,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
        /// Print the run record's summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Runner instead of the plan's `runner:`; `external` starts no node: the nodes are
        /// started elsewhere (e.g. a Kubernetes Job) and dial --control-listen.
        #[arg(long, value_enum)]
        runner: Option<RunnerChoice>,
        /// TCP address of the control server (default 127.0.0.1 on a free port), e.g.
        /// `0.0.0.0:7000` in a coordinator pod.
        #[arg(long, value_name = "ADDR")]
        control_listen: Option<String>,
        #[command(flatten)]
        telemetry: TelemetryArgs,
    },
    /// Write a Grafana dashboard (JSON) for the metrics `run` serves at /metrics.
    GrafanaDashboard {
        /// Output file (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check plans without running them.
    Validate {
        #[arg(required = true)]
        plans: Vec<PathBuf>,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Run a plan's parameter matrix, every iteration a fresh fleet, and compare variants.
    Bench(crate::bench::cli::BenchArgs),
    /// The largest fleet (or rate) this machine runs a plan at with the host unsaturated and
    /// delivery 1.0: bisection, one run per probe.
    Capacity(crate::capacity::CapacityArgs),
    /// Check that a node implementation follows the node contract (docs/node-contract.md).
    Conformance(crate::conformance::ConformanceArgs),
    /// Re-render the reports of a results folder from its run.json (a bench folder: from bench.json).
    Report { dir: PathBuf },
    /// Kubernetes: render a plan's objects, or run it on a cluster.
    #[cfg(feature = "k8s")]
    K8s {
        #[command(subcommand)]
        cmd: crate::k8s::cli::K8sCmd,
    },
    /// Kubernetes (not in this build: rebuild with `--features k8s`).
    #[cfg(not(feature = "k8s"))]
    K8s {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `orchestrator run` flags over the plan's `telemetry:` section.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TelemetryArgs {
    /// Traces from every node: `on` or `off` (overrides `telemetry.traces`).
    #[arg(long, value_parser = ["on", "off"])]
    pub traces: Option<String>,
    /// Fraction of published messages traced, 0..=1 (overrides `telemetry.sample_ratio`).
    #[arg(long, value_name = "RATIO")]
    pub sample_ratio: Option<f64>,
    /// Nodes export traces to this OTLP/HTTP collector (e.g. http://127.0.0.1:4318) instead
    /// of the embedded one; turns traces on.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics during the run (`off`: don't);
    /// default 127.0.0.1 on a free port, printed at the start.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Keep serving /metrics this long after the run (e.g. `30s`) for a last scrape.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub metrics_linger: Option<Duration>,
}

impl TelemetryArgs {
    pub fn overrides(&self) -> TelemetryOverrides {
        TelemetryOverrides {
            traces: self
                .traces
                .as_deref()
                .map(|t| if t == "on" { Traces::On } else { Traces::Off }),
            sample_ratio: self.sample_ratio,
            otlp_endpoint: self.otlp_endpoint.clone(),
            metrics_listen: self.metrics_listen.clone(),
            metrics_linger: self.metrics_linger,
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // kube's client logs every refused API call; `k8s run` reports them itself.
                .unwrap_or_else(|_| "error,kube_client=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            if let Some(pe) = e.downcast_ref::<plan::PlanError>() {
                eprintln!("error: {pe}");
                return ExitCode::from(EXIT_INVALID);
            }
            if let Some(se @ crate::spec::SpecError::RunId(_)) = e.downcast_ref() {
                eprintln!("error: {se}");
                return ExitCode::from(EXIT_INVALID);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(Status::Error.exit_code() as u8)
        }
    }
}

fn overrides(set: &[String]) -> Result<BTreeMap<String, serde_json::Value>> {
    set.iter()
        .map(|s| plan::parse_override(s).map_err(anyhow::Error::msg))
        .collect()
}

async fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Validate { plans, set } => {
            let ov = overrides(&set)?;
            let mut bad = false;
            for p in plans {
                match plan::load(&p, &ov) {
                    Ok(l) => println!(
                        "{}: ok ({} nodes in {} groups, {} phases)",
                        p.display(),
                        l.plan.node_count(),
                        l.plan.groups.len(),
                        l.plan.workload.len()
                    ),
                    Err(e) => {
                        eprintln!("{e}");
                        bad = true;
                    }
                }
            }
            Ok(if bad {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Run {
            plan: path,
            set,
            results,
            node_bin,
            interop_dir,
            run_id,
            quiet,
            json,
            runner,
            control_listen,
            telemetry,
        } => {
            // The overrides are part of the plan as validated: `--runner local` for a plan
            // with shaped links is refused like `runner: local` would be.
            let loaded = plan::load_with(
                &path,
                &Overrides {
                    params: overrides(&set)?,
                    runner,
                    telemetry: telemetry.overrides(),
                },
            )?;
            let opts = RunOptions {
                results_root: results,
                programs: Programs::discover(node_bin, interop_dir),
                command: std::env::args().collect(),
                quiet,
                run_id,
                runner,
                control_listen,
            };
            let out = run::run_plan(&loaded, &opts, signals::stop_flag()).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "dir": out.dir,
                        "outcome": out.record.outcome,
                        "summary": out.record.summary,
                        "assertions": out.record.assertions,
                    }))?
                );
            } else if !quiet {
                print_summary(&out);
            }
            for e in &out.write_errors {
                eprintln!("error: not written: {e}");
            }
            Ok(ExitCode::from(run_exit_code(
                out.record.outcome.status,
                !out.write_errors.is_empty(),
            )))
        }
        Cmd::Bench(args) => crate::bench::cli::run(args, signals::stop_flag()).await,
        Cmd::Capacity(args) => crate::capacity::run(args, signals::stop_flag()).await,
        Cmd::Conformance(args) => crate::conformance::cli(args).await,
        Cmd::GrafanaDashboard { out } => {
            let text = serde_json::to_string_pretty(&crate::telemetry::grafana::dashboard())?;
            match out {
                Some(p) => {
                    std::fs::write(&p, text + "\n")
                        .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
                    eprintln!(
                        "wrote {} (Grafana → Dashboards → New → Import)",
                        p.display()
                    );
                }
                None => println!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { dir } if crate::bench::is_bench_dir(&dir) => {
            crate::bench::rerender(&dir)?;
            println!("{}", dir.join(crate::bench::render::BENCH_MD).display());
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "k8s")]
        Cmd::K8s { cmd } => crate::k8s::cli::dispatch(cmd).await,
        #[cfg(not(feature = "k8s"))]
        Cmd::K8s { .. } => {
            eprintln!(
                "error: this orchestrator was built without Kubernetes support.\n\
                 Rebuild it with the `k8s` feature:  cargo build --release -p orchestrator --features k8s\n\
                 (it is off by default so that local runs never compile the Kubernetes client; see docs/kubernetes.md)"
            );
            Ok(ExitCode::from(EXIT_INVALID))
        }
        Cmd::Report { dir } => {
            let record = store::read_record(&dir)?;
            report::write_all(&dir, &record)?;
            println!("{}", dir.join("report.md").display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_summary(out: &run::RunOutput) {
    let r = &out.record;
    let s = &r.summary;
    println!("{:?}: {}", r.outcome.status, r.plan_name);
    for reason in &r.outcome.reasons {
        println!("  - {reason}");
    }
    println!(
        "  delivery ratio {} ({} / {}), latency p50 {} p99 {} ({} samples), peak RSS/node median {} max {}",
        s.delivery_ratio.map_or("n/a".into(), |v| format!("{v:.4}")),
        s.delivered,
        s.expected_deliveries,
        s.latency.map_or("n/a".into(), |l| report::ms(l.p50_ms)),
        s.latency.map_or("n/a".into(), |l| report::ms(l.p99_ms)),
        s.latency.map_or(0, |l| l.count),
        report::mib(s.peak_rss_bytes.median),
        report::mib(s.peak_rss_bytes.max),
    );
    for w in r.sections.witness.iter().flat_map(|w| &w.witnesses) {
        println!(
            "  witness {} ({}): {}",
            w.index, w.implementation, w.verdict
        );
    }
    println!("  report: {}", out.dir.join("report.md").display());
}

/// The exit code of `orchestrator run`: the run's status, except that a results file that
/// could not be written makes it 4 (error: the results folder is incomplete) — unless the
/// run was interrupted, which stays 130.
pub fn run_exit_code(status: Status, write_failed: bool) -> u8 {
    match status {
        Status::Interrupted => crate::exit::EXIT_INTERRUPTED,
        _ if write_failed => Status::Error.exit_code() as u8,
        s => s.exit_code() as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_error_turns_any_status_but_interrupted_into_4() {
        assert_eq!(run_exit_code(Status::Passed, false), 0);
        assert_eq!(run_exit_code(Status::Passed, true), 4);
        assert_eq!(run_exit_code(Status::NodeFailed, true), 4);
        assert_eq!(run_exit_code(Status::NodeFailed, false), 2);
        assert_eq!(run_exit_code(Status::Interrupted, true), 130);
    }
}
