//! `orchestrator k8s render | run | coordinate`.

use super::coordinate::{CoordinateArgs, coordinate};
use super::render::{self, RenderOptions};
use super::run::{KubeRun, Outcome, RunConfig, Say};
use crate::exit::EXIT_INVALID;
use crate::plan;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Subcommand, Debug)]
pub enum K8sCmd {
    /// Print every object `k8s run` would create, as multi-document YAML (deterministic), to
    /// review or to `kubectl apply -f -` by hand.
    Render {
        plan: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Run id (labels, namespace default).
        #[arg(long, default_value = "manual")]
        run_id: String,
        /// Namespace of every object.
        #[arg(long, default_value = "pubsub-testbed")]
        namespace: String,
        /// Print only the resolved plan (what the ConfigMap holds), e.g. for the Helm chart's
        /// `--set-file plan=…`.
        #[arg(long)]
        plan_only: bool,
    },
    /// Run a plan on the cluster of the current kubeconfig context: create, watch, fetch the
    /// results into results/<plan>/<run-id>/, and delete everything (also on failure and Ctrl-C).
    Run {
        plan: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Run id (default: a timestamp).
        #[arg(long)]
        run_id: Option<String>,
        /// Namespace (default: testbed-<run-id>, created and deleted by the run).
        #[arg(long)]
        namespace: Option<String>,
        /// Where results go (results/<plan>/<run-id>/ below it).
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// kubeconfig context (default: the current one).
        #[arg(long)]
        context: Option<String>,
        /// Leave everything on the cluster at the end (for debugging).
        #[arg(long)]
        keep: bool,
        /// A pod still Pending after this long fails the run (`5m`, `90s`). Node pods are
        /// also named, whatever this says, shortly before the coordinator stops waiting for
        /// nodes (60 s + 50 ms per node after its start).
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        pending_timeout: Duration,
        /// How long the coordinator may take to become ready.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        startup_timeout: Duration,
        /// Only errors and the final summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// What the coordinator pod runs: the plan with the `external` runner, plus the results
    /// endpoint (/status, /results.tar, /abort) for `--hold` after the run.
    Coordinate {
        plan: PathBuf,
        #[arg(long)]
        run_id: String,
        #[arg(long, default_value = "/results")]
        results: PathBuf,
        #[arg(long, default_value = "0.0.0.0:7000")]
        control_listen: String,
        #[arg(long, default_value = "0.0.0.0:7001")]
        http_listen: String,
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        hold: Duration,
        /// Stop the run and exit when no request came for this long (the launcher is gone).
        #[arg(long, value_parser = parse_duration)]
        client_lease: Option<Duration>,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
}

/// Options shared by `render` and `run`.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Override a plan parameter: `--set hosts=50` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Container image holding `orchestrator` and `pubsub-node`.
    #[arg(long, default_value = render::DEFAULT_IMAGE)]
    pub image: String,
    /// imagePullPolicy of every container (`IfNotPresent` suits `kind load docker-image`).
    #[arg(long, default_value = "IfNotPresent")]
    pub pull_policy: String,
    /// Use an existing namespace instead of creating one (then each object is deleted).
    #[arg(long)]
    pub existing_namespace: bool,
    /// `pubsub-node` processes per pod: 1 is a pod per node; more packs a large fleet into
    /// fewer pods (each pod's requests are the group's times this).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub nodes_per_pod: u32,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    testbed_contract::duration::parse(s)
}

fn overrides(set: &[String]) -> Result<BTreeMap<String, serde_json::Value>> {
    set.iter()
        .map(|s| plan::parse_override(s).map_err(anyhow::Error::msg))
        .collect()
}

fn options(common: &Common, run_id: &str, namespace: &str) -> RenderOptions {
    RenderOptions {
        create_namespace: !common.existing_namespace,
        image: common.image.clone(),
        image_pull_policy: common.pull_policy.clone(),
        nodes_per_pod: common.nodes_per_pod,
        ..RenderOptions::new(run_id, namespace)
    }
}

/// `k8s run` asks the coordinator at least this often (its keepalive) and renders it with
/// four times this as its `--client-lease`.
const KEEPALIVE: Duration = Duration::from_secs(15);

pub async fn dispatch(cmd: K8sCmd) -> Result<ExitCode> {
    match cmd {
        K8sCmd::Render {
            plan: path,
            common,
            run_id,
            namespace,
            plan_only,
        } => {
            let loaded = plan::load(&path, &overrides(&common.set)?)?;
            let rendered = if plan_only {
                render::check_plan(&loaded.plan)
                    .and_then(|_| render::resolved_plan_yaml(&loaded.plan))
            } else {
                render::render(&loaded.plan, &options(&common, &run_id, &namespace))
                    .and_then(|o| o.to_yaml())
            };
            match rendered {
                Ok(yaml) => {
                    print!("{yaml}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    Ok(ExitCode::from(EXIT_INVALID))
                }
            }
        }
        K8sCmd::Run {
            plan: path,
            common,
            run_id,
            namespace,
            results,
            context,
            keep,
            pending_timeout,
            startup_timeout,
            quiet,
        } => {
            let loaded = plan::load(&path, &overrides(&common.set)?)?;
            let run_id = run_id
                .unwrap_or_else(|| chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f").to_string());
            let namespace = namespace.unwrap_or_else(|| format!("testbed-{run_id}"));
            let mut opts = options(&common, &run_id, &namespace);
            // Kept objects are for a person to look at: no lease makes the coordinator go.
            if !keep {
                opts.client_lease = Some(KEEPALIVE * 4);
            }
            let objects = match render::render(&loaded.plan, &opts) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            let client = client(context.as_deref()).await?;
            let cfg = RunConfig {
                results_root: results,
                plan_name: loaded.plan.name.clone(),
                plan_file: path.clone(),
                run_id: run_id.clone(),
                groups: loaded.plan.groups.iter().map(|g| g.id.clone()).collect(),
                keep,
                pending_timeout,
                coordinator_wait: crate::workload::handshake_wait(loaded.plan.node_count() as usize),
                event_grace: Duration::from_secs(3),
                startup_timeout,
                deadline: loaded.plan.timeout + render::STARTUP_ALLOWANCE,
                poll: Duration::from_secs(2),
                keepalive: opts.client_lease.map(|_| KEEPALIVE),
                abort_grace: Duration::from_secs(60),
                rewatch_delay: Duration::from_secs(1),
            };
            let say: Say = if quiet {
                Arc::new(|line: String| {
                    if line.starts_with("FAILED")
                        || line.starts_with("error")
                        || line.starts_with("warning")
                    {
                        eprintln!("{line}");
                    }
                })
            } else {
                Arc::new(|line: String| eprintln!("{line}"))
            };
            let per_pod = if common.nodes_per_pod > 1 {
                format!(", {} per pod", common.nodes_per_pod)
            } else {
                String::new()
            };
            say(format!(
                "run {}/{run_id} in namespace {namespace} ({} nodes{per_pod})",
                loaded.plan.name,
                loaded.plan.node_count()
            ));
            let outcome = KubeRun::new(client, objects, cfg, say)
                .run(interrupts())
                .await;
            print_summary(&outcome);
            Ok(ExitCode::from(outcome.exit_code.clamp(0, 255) as u8))
        }
        K8sCmd::Coordinate {
            plan: path,
            run_id,
            results,
            control_listen,
            http_listen,
            hold,
            client_lease,
            set,
        } => {
            let args = CoordinateArgs {
                plan: path,
                run_id,
                results,
                control_listen,
                http_listen,
                hold,
                client_lease,
                overrides: overrides(&set)?,
            };
            let code = coordinate(args, crate::signals::stop_flag()).await?;
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
    }
}

async fn client(context: Option<&str>) -> Result<kube::Client> {
    let config = match context {
        Some(c) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(c.to_string()),
            ..Default::default()
        })
        .await
        .with_context(|| format!("reading kubeconfig context {c}"))?,
        None => kube::Config::infer()
            .await
            .context("no cluster: set KUBECONFIG or ~/.kube/config (e.g. `kind create cluster`), or run in a pod")?,
    };
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

fn print_summary(o: &Outcome) {
    let status = o
        .record_status
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|| {
            if o.interrupted {
                "Interrupted".into()
            } else {
                "Error".into()
            }
        });
    println!("{status} (exit code {})", o.exit_code);
    for p in &o.problems {
        println!("  - {p}");
    }
    // The error, unless it only repeats a problem listed above.
    if let Some(e) = &o.error
        && !o
            .problems
            .iter()
            .any(|p| e.contains(&p.problem.to_string()))
    {
        println!("  - {e}");
    }
    if let Some(dir) = &o.results_dir {
        println!("  report: {}", dir.join("report.md").display());
    }
    if let Some(e) = &o.cleanup_error {
        println!("  WARNING: cleanup incomplete: {e}");
    }
}

/// Counts SIGINT/SIGTERM: 1 stops the run and collects, 2 stops waiting (cleanup still
/// happens), 3 exits at once.
fn interrupts() -> watch::Receiver<u32> {
    crate::signals::counter(&[
        "interrupted: stopping the run, collecting partial results, then deleting (Ctrl-C again: delete without collecting)",
        "interrupted again: deleting what was created (Ctrl-C a third time: exit at once and leave it)",
    ])
}
