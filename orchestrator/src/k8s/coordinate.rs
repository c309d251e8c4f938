//! `orchestrator k8s coordinate`: what the coordinator pod runs. It is `orchestrator run
//! --runner external --control-listen …` (the Jobs' pods are the nodes; they dial the
//! coordinator's Service) plus the results endpoint ([`super::results`]), which stays up for
//! `--hold` after the run so the results can be fetched before the pod goes away.

use super::results::{self, RunState, Shared};
use crate::plan::{self, Overrides, RunnerChoice};
use crate::run::{self, RunOptions};
use crate::runner::program::Programs;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct CoordinateArgs {
    pub plan: PathBuf,
    pub run_id: String,
    pub results: PathBuf,
    pub control_listen: String,
    pub http_listen: String,
    pub hold: Duration,
    pub overrides: BTreeMap<String, serde_json::Value>,
}

/// Runs the plan and serves its results; returns the run's exit code.
pub async fn coordinate(args: CoordinateArgs, mut interrupt: watch::Receiver<bool>) -> Result<i32> {
    let listener = TcpListener::bind(&args.http_listen)
        .await
        .with_context(|| format!("binding the results endpoint on {}", args.http_listen))?;
    let (abort_tx, abort_rx) = watch::channel(false);
    let shared = Shared::new(abort_tx.clone());
    let server = tokio::spawn(results::serve(listener, shared.clone()));
    // SIGTERM/SIGINT (pod deletion) ends the run like `/abort`.
    let mut signal_watch = interrupt.clone();
    let forward = tokio::spawn(async move {
        if signal_watch.wait_for(|v| *v).await.is_ok() {
            let _ = abort_tx.send(true);
        }
    });

    let outcome = async {
        // Validated for the external runner: the Job's pods are the nodes.
        let loaded = plan::load_with(
            &args.plan,
            &Overrides {
                params: args.overrides.clone(),
                runner: Some(RunnerChoice::External),
                ..Overrides::default()
            },
        )?;
        let opts = RunOptions {
            results_root: args.results.clone(),
            programs: Programs::discover(None, None),
            command: std::env::args().collect(),
            quiet: false,
            run_id: Some(args.run_id.clone()),
            runner: Some(RunnerChoice::External),
            control_listen: Some(args.control_listen.clone()),
        };
        run::run_plan(&loaded, &opts, abort_rx).await
    }
    .await;
    forward.abort();

    let code = match outcome {
        Ok(out) => {
            let code = out.record.outcome.status.exit_code();
            let rel = out
                .dir
                .strip_prefix(&args.results)
                .unwrap_or(&out.dir)
                .display()
                .to_string();
            eprintln!(
                "coordinator: run finished with {:?} (exit code {code}); results in {rel}",
                out.record.outcome.status
            );
            shared.finish(
                RunState::Done {
                    exit_code: code,
                    dir: rel,
                },
                Some(out.dir),
            );
            code
        }
        Err(e) => {
            eprintln!("coordinator: the run failed: {e:#}");
            shared.finish(
                RunState::Error {
                    error: format!("{e:#}"),
                },
                None,
            );
            crate::record::Status::Error.exit_code()
        }
    };
    eprintln!(
        "coordinator: serving results for {}",
        humantime::format_duration(args.hold)
    );
    tokio::select! {
        _ = tokio::time::sleep(args.hold) => {}
        _ = interrupt.wait_for(|v| *v) => {}
    }
    server.abort();
    Ok(code)
}
