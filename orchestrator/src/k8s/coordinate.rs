//! `orchestrator k8s coordinate`: what the coordinator pod runs. It is `orchestrator run
//! --runner external --control-listen …` (the Jobs' pods are the nodes; they dial the
//! coordinator's Service) plus the results endpoint ([`super::results`]), which stays up for
//! `--hold` after the run so the results can be fetched before the pod goes away. A hello
//! must carry the run's secret, which this pod and the node pods read from the run's Secret
//! into `TESTBED_RUN_SECRET` (see `run::launch`).
//!
//! With `--client-lease D` (what `orchestrator k8s run` renders) the launcher is expected to
//! ask something at least every D: when it stops (killed, lost its network), the coordinator
//! stops the run, keeps nothing for anyone, and exits, so its Job ends and Kubernetes deletes
//! it and everything the launcher made it the owner of.

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
    /// Stop and exit when no request came for this long (the launcher is gone).
    pub client_lease: Option<Duration>,
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
    let forward = {
        let abort_tx = abort_tx.clone();
        tokio::spawn(async move {
            if signal_watch.wait_for(|v| *v).await.is_ok() {
                let _ = abort_tx.send(true);
            }
        })
    };
    // The launcher's lease: no request for that long means it is gone.
    let (lost_tx, mut lost) = watch::channel(false);
    let lease = args.client_lease.map(|lease| {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if shared.since_contact() >= lease {
                    eprintln!(
                        "coordinator: no word from the launcher for {}: stopping the run and exiting",
                        humantime::format_duration(lease)
                    );
                    let _ = lost_tx.send(true);
                    let _ = abort_tx.send(true);
                    return;
                }
            }
        })
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
            match shared.abort_reason() {
                // The launcher stopped the run and decides its outcome (e.g. a node pod failed).
                Some(why) => eprintln!(
                    "coordinator: stopped at the launcher's request ({why}); partial results in {rel}"
                ),
                None => eprintln!(
                    "coordinator: run finished with {:?} (exit code {code}); results in {rel}",
                    out.record.outcome.status
                ),
            }
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
    if !*lost.borrow() {
        eprintln!(
            "coordinator: serving the results for at most {}",
            humantime::format_duration(args.hold)
        );
        tokio::select! {
            _ = tokio::time::sleep(args.hold) => {}
            _ = interrupt.wait_for(|v| *v) => {}
            // Without a lease nobody sends on `lost` (and a closed channel must not end the hold).
            _ = lost.wait_for(|v| *v), if args.client_lease.is_some() => {}
        }
    }
    if let Some(l) = lease {
        l.abort();
    }
    server.abort();
    Ok(code)
}
