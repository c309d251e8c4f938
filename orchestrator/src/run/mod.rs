//! One run of a plan, end to end: results folder, control server, launch through the runner,
//! drive the workload, collect results, always reap every process, and write what was
//! measured — also when the run fails, times out or is interrupted.

pub mod driver;
pub mod fleet;

use crate::aggregate;
use crate::control::ControlServer;
use crate::host;
use crate::plan::LoadedPlan;
use crate::progress::Progress;
use crate::record::{NodeRecord, NodeStatus, Outcome, RunRecord, Status, Versions};
use crate::report;
use crate::results_dir::RunDir;
use crate::runner::program::Programs;
use crate::runner::{ControlTransport, NodeLaunch, Runner, RunnerChoice};
use anyhow::{Context, Result};
use driver::Driver;
use fleet::{Fleet, NodeSlot, Stop};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use testbed_contract::env;
use testbed_contract::plan::RunnerKind;
use testbed_contract::protocol::{Command, NodeConfig, OrchMsg};
use testbed_contract::results::ExitReason;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The seed of node `index`, derived from the plan's seed.
pub fn node_seed(plan_seed: u64, index: u32) -> u64 {
    plan_seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(index as u64)
}

/// How to run, beyond the plan itself.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub results_root: PathBuf,
    pub programs: Programs,
    /// The command line, recorded in run.json.
    pub command: Vec<String>,
    pub quiet: bool,
    /// Fixed run id (tests, resumable benches); default: a timestamp.
    pub run_id: Option<String>,
    /// Overrides the plan's `runner:` (`--runner`); `External` starts no node itself.
    pub runner: Option<RunnerChoice>,
    /// TCP address the control server binds (`--control-listen`); default `127.0.0.1:0`.
    pub control_listen: Option<String>,
}

/// The result of [`run_plan`]: where it was written and what it says.
pub struct RunOutput {
    pub dir: PathBuf,
    pub record: RunRecord,
}

/// Makes the runner a plan asks for.
pub fn make_runner(
    kind: RunnerKind,
    plan: &testbed_contract::plan::Plan,
    exits: mpsc::UnboundedSender<crate::runner::NodeExit>,
) -> Result<Box<dyn Runner>> {
    match kind {
        RunnerKind::Local => Ok(Box::new(crate::runner::local::LocalRunner::new(exits))),
        RunnerKind::Netns => Ok(Box::new(crate::runner::netns::NetnsRunner::new(
            plan, exits,
        )?)),
        RunnerKind::K8s => anyhow::bail!(
            "runner `k8s` runs from `orchestrator k8s run PLAN`; `orchestrator run` runs fleets on this machine"
        ),
    }
}

/// The runner of a run: `--runner` when given, else the plan's `runner:`.
pub fn select_runner(
    choice: Option<RunnerChoice>,
    plan: &testbed_contract::plan::Plan,
    exits: mpsc::UnboundedSender<crate::runner::NodeExit>,
) -> Result<Box<dyn Runner>> {
    match choice.map(RunnerChoice::kind) {
        Some(None) => Ok(Box::new(crate::runner::external::ExternalRunner::new())),
        Some(Some(kind)) => make_runner(kind, plan, exits),
        None => make_runner(plan.runner, plan, exits),
    }
}

pub async fn run_plan(
    loaded: &LoadedPlan,
    opts: &RunOptions,
    interrupt: watch::Receiver<bool>,
) -> Result<RunOutput> {
    let plan = &loaded.plan;
    let started_at = chrono::Utc::now();
    let run_id = opts
        .run_id
        .clone()
        .unwrap_or_else(|| started_at.format("%Y%m%d-%H%M%S-%3f").to_string());
    // Resolve every node program and make the runner before writing anything: a missing Go
    // binary or missing privileges is an error with a fix, not a crash of node 37.
    let mut programs = BTreeMap::new();
    for g in &plan.groups {
        let key = (g.implementation, g.impl_version.clone());
        if let std::collections::btree_map::Entry::Vacant(slot) = programs.entry(key) {
            slot.insert(
                opts.programs
                    .resolve(g.implementation, g.impl_version.as_deref())?,
            );
        }
    }
    let (exit_tx, exit_rx) = mpsc::unbounded_channel();
    let mut runner = select_runner(opts.runner, plan, exit_tx)?;
    let dir = RunDir::create(&opts.results_root, &plan.name, &run_id)?;
    dir.write_plan(&loaded.text, plan)?;

    // Telemetry first: each node's welcome names the trace collector.
    let telemetry = crate::telemetry::RunTelemetry::start(plan, &run_id, opts.quiet).await?;

    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let control_bind = opts.control_listen.as_deref().unwrap_or("127.0.0.1:0");
    // Unix socket paths are limited to 108 bytes, so the socket lives in the temp dir under a
    // short name rather than in a possibly deep results folder (the server removes it).
    let socket = std::env::temp_dir().join(format!(
        "ptb-{}-{}.sock",
        std::process::id(),
        next_socket_id()
    ));
    let server = ControlServer::start(control_bind, Some(&socket), control_tx)
        .await
        .context("starting the control server")?;

    // A churn phase's schedule is computed up front: nodes must know every origin's group,
    // including the peers it will add.
    let churn = crate::churn::prepare(plan);
    let origin_groups = churn
        .as_ref()
        .map_or_else(|| plan.group_of_index(), |c| c.origin_groups(plan));
    let mut slots = Vec::new();
    let mut index = 0u32;
    for g in &plan.groups {
        for _ in 0..g.count {
            let config = NodeConfig {
                run_id: run_id.clone(),
                index,
                group: g.id.clone(),
                variant: g.variant,
                gossipsub: g.gossipsub.clone(),
                seed: node_seed(plan.seed, index),
                snapshot_interval_ms: plan.telemetry.snapshot_interval.as_millis() as u64,
                origin_groups: origin_groups.clone(),
                tracing: telemetry.tracing_for(index),
                node_metrics: telemetry.node_metrics(),
                security: g.security,
                report_deliveries: false,
            };
            slots.push(NodeSlot::new(config, g.implementation.as_str()));
            index += 1;
        }
    }
    let t0 = Instant::now();
    let mut fleet = Fleet::new(slots, control_rx, exit_rx, interrupt, t0 + plan.timeout);
    telemetry.live.set_nodes(&fleet.nodes);
    fleet.live = Some(telemetry.live.clone());
    let progress = Progress::new(opts.quiet, &plan.name, &run_id);

    // Launch.
    let control_addr = match runner.control_transport() {
        ControlTransport::Tcp => server.endpoints.tcp.clone(),
        ControlTransport::Unix => server
            .endpoints
            .unix
            .clone()
            .context("no unix control socket")?,
    };
    let mut launch_error = None;
    // The first launch of each group, for the nodes a churn phase adds later.
    let mut templates = BTreeMap::new();
    progress.stage("launching", plan.node_count() as u64);
    let mut i = 0u32;
    'launch: for g in &plan.groups {
        let program = &programs[&(g.implementation, g.impl_version.clone())];
        for _ in 0..g.count {
            let launch = NodeLaunch {
                index: i,
                group: g.id.clone(),
                implementation: g.implementation,
                program: program.clone(),
                env: vec![
                    (env::CONTROL_ADDR.into(), control_addr.clone()),
                    (env::NODE_INDEX.into(), i.to_string()),
                    (env::RUN_ID.into(), run_id.clone()),
                    (env::GROUP.into(), g.id.clone()),
                    (env::LISTEN_IP.into(), runner.listen_ip(i)),
                ],
                log_path: dir.node_log(i),
            };
            if churn.is_some() && !templates.contains_key(&g.id) {
                templates.insert(
                    g.id.clone(),
                    (launch.clone(), fleet.nodes[i as usize].config.clone()),
                );
            }
            match runner.launch(launch).await {
                Ok(pid) => fleet.nodes[i as usize].pid = pid,
                Err(e) => {
                    launch_error = Some(e.to_string());
                    break 'launch;
                }
            }
            progress.set(i as u64 + 1);
            i += 1;
        }
    }

    // Time zero of timed network events: the whole fleet has been launched.
    runner.workload_started();
    let events_zero_ms = t0.elapsed().as_secs_f64() * 1e3;
    // The same instant on the wall clock, which the nodes' receive times are counted in.
    let events_zero_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut driver = Driver::new(plan, &mut fleet, &progress, t0);
    if let Some(prepared) = churn {
        let launcher = crate::churn::launcher::Launcher::new(
            runner.as_mut(),
            templates,
            dir.path.clone(),
            plan.seed,
        );
        driver = driver.with_churn(crate::churn::Setup { launcher, prepared });
    }
    let drive_result = match &launch_error {
        Some(_) => Err(Stop::Fault),
        None => {
            async {
                driver.handshake().await?;
                driver.connect().await?;
                driver.run_phases().await
            }
            .await
        }
    };
    let log = std::mem::take(&mut driver.log);
    drop(driver);

    // Collect: ask for results (finish, or abort when the run failed), then reap everything.
    fleet.activity = "collection of results".into();
    fleet.finishing = true;
    let live: Vec<u32> = fleet.alive().map(|s| s.index).collect();
    // Finish ids per node: the ack's info holds counters the result has no field for.
    let mut finish_ids: BTreeMap<u32, u64> = BTreeMap::new();
    // Who is asked for a result: on success the live nodes; on failure also nodes already
    // marked hung (and still connected), whose partial result is worth having: a node that
    // missed one command's deadline usually still answers an abort.
    let asked: Vec<u32> = match &drive_result {
        Ok(()) => {
            progress.stage("collecting results", live.len() as u64);
            for &i in &live {
                if let Some(id) = fleet.command(i, Command::Finish) {
                    finish_ids.insert(i, id);
                }
            }
            live.clone()
        }
        Err(stop) => {
            let reason = match stop {
                Stop::Interrupted => "the run was interrupted",
                Stop::Timeout => "the plan's timeout was reached",
                Stop::Fault => "another node failed",
            };
            let reachable: Vec<u32> = fleet
                .nodes
                .iter()
                .filter(|s| {
                    s.channel_open()
                        && s.exit.is_none()
                        && !s.removed
                        && s.result.is_none()
                        && s.fault
                            .as_ref()
                            .is_none_or(|(st, _)| *st == NodeStatus::Hung)
                })
                .map(|s| s.index)
                .collect();
            progress.stage(
                "aborting: collecting partial results",
                reachable.len() as u64,
            );
            for &i in &reachable {
                fleet.send(
                    i,
                    OrchMsg::Abort {
                        reason: reason.into(),
                    },
                );
            }
            reachable
        }
    };
    let collect_until =
        Instant::now() + Duration::from_secs(20) + Duration::from_millis(20 * asked.len() as u64);
    let _ = fleet
        .wait_until(collect_until, |f| {
            asked.iter().all(|&i| {
                let s = &f.nodes[i as usize];
                // An exit alone is not the end: the result may still be on its way through the
                // control channel, which closes after the last line was read.
                s.result.is_some() || s.fault.is_some() || (s.exit.is_some() && !s.channel_open())
            })
        })
        .await;
    let missing: Vec<u32> = live
        .iter()
        .copied()
        .filter(|&i| fleet.nodes[i as usize].result.is_none())
        .collect();
    if drive_result.is_ok() {
        fleet.finishing = false;
        for i in missing {
            fleet.fault(
                i,
                NodeStatus::Hung,
                format!("node {i} did not send its final result"),
            );
        }
    }
    runner.shutdown(Duration::from_secs(3)).await;
    let runner_report = runner.report();
    // Drain exit events now that every process is reaped.
    let _ = fleet
        .wait_until(Instant::now() + Duration::from_millis(50), |_| false)
        .await;
    drop(server);
    progress.finish();

    let finished_at = chrono::Utc::now();
    let (status, mut reasons) = match (&launch_error, &drive_result) {
        (Some(e), _) => (Status::Error, vec![e.clone()]),
        (None, Ok(())) if fleet.has_faults() => (Status::NodeFailed, vec![]),
        (None, Ok(())) => (Status::Passed, vec![]),
        (None, Err(Stop::Interrupted)) => {
            (Status::Interrupted, vec!["interrupted by signal".into()])
        }
        (None, Err(Stop::Timeout)) => (
            Status::Timeout,
            vec![format!(
                "the plan's timeout ({}) was reached during {}",
                humantime::format_duration(plan.timeout),
                fleet.activity
            )],
        ),
        (None, Err(Stop::Fault)) => (Status::NodeFailed, vec![]),
    };
    for s in &fleet.nodes {
        if let Some((_, why)) = &s.fault {
            reasons.push(why.clone());
        }
    }
    reasons.extend(fleet.anomalies.iter().cloned());
    // Protocol problems nobody can be blamed for still fail the run.
    let status = if status == Status::Passed && !fleet.anomalies.is_empty() {
        Status::NodeFailed
    } else {
        status
    };

    let versions = Versions {
        testbed: env!("CARGO_PKG_VERSION").to_string(),
        node_implementations: fleet
            .nodes
            .iter()
            .filter_map(|s| Some((s.implementation.clone(), s.impl_version.clone()?)))
            .collect(),
    };
    let finish_info: BTreeMap<u32, serde_json::Value> = finish_ids
        .iter()
        .filter_map(|(&i, &id)| {
            let info = &fleet.ack(id)?.info;
            info.as_object()
                .is_some_and(|o| !o.is_empty())
                .then(|| (i, info.clone()))
        })
        .collect();
    let nodes: Vec<NodeRecord> = fleet
        .nodes
        .into_iter()
        .map(|s| {
            let info = finish_info.get(&s.index).cloned();
            node_record(s, &dir, info)
        })
        .collect();
    let mut record = RunRecord {
        schema: crate::record::RECORD_SCHEMA,
        run_id: run_id.clone(),
        plan_name: plan.name.clone(),
        plan_file: loaded.path.display().to_string(),
        command: opts.command.clone(),
        started_at: started_at.to_rfc3339(),
        finished_at: finished_at.to_rfc3339(),
        duration_s: (finished_at - started_at).num_milliseconds() as f64 / 1e3,
        runner: runner.name().to_string(),
        params: plan.params.clone(),
        versions,
        host: host::facts(),
        outcome: Outcome { status, reasons },
        summary: Default::default(),
        assertions: vec![],
        phases: log.phases.clone(),
        group_pairs: vec![],
        nodes,
        extra: runner_report.into_iter().collect(),
    };
    aggregate::fill(&mut record, plan, &log, t0, events_zero_unix_ns);
    if let Some(network) = &plan.network {
        record.extra.insert(
            "network".into(),
            network_section(plan, network, events_zero_ms),
        );
    }
    crate::by_implementation::fill(&mut record, plan);
    if let Some(c) = &log.churn {
        crate::churn::event_log::write_jsonl(&dir.path.join("events.jsonl"), &c.events)
            .with_context(|| format!("writing {}/events.jsonl", dir.path.display()))?;
    }
    record.assertions = aggregate::check_assertions(plan, &record.summary);
    if record.outcome.status == Status::Passed && record.assertions.iter().any(|a| !a.passed) {
        record.outcome.status = Status::AssertionFailed;
        for a in record.assertions.iter().filter(|a| !a.passed) {
            record.outcome.reasons.push(format!(
                "assertion `{}` failed: actual {}",
                a.assertion,
                a.actual.map_or("unavailable".into(), |v| format!("{v}"))
            ));
        }
    }
    // Every node is reaped: all spans are in. Adds the `traces` and `metrics` sections.
    telemetry.finish(&dir.path, &mut record).await?;
    dir.write_record(&record)?;
    report::write_all(&dir.path, &record)?;
    Ok(RunOutput {
        dir: dir.path,
        record,
    })
}

fn node_record(s: NodeSlot, dir: &RunDir, finish_info: Option<serde_json::Value>) -> NodeRecord {
    let (status, failure) = match s.fault {
        Some((st, why)) => (st, Some(why)),
        None if s.removed => (NodeStatus::Removed, None),
        None if s
            .result
            .as_ref()
            .is_some_and(|r| r.exit == ExitReason::Finished) =>
        {
            (NodeStatus::Ok, None)
        }
        None => (NodeStatus::Aborted, None),
    };
    NodeRecord {
        index: s.index,
        group: s.group,
        implementation: s.implementation,
        pid: s.pid,
        peer_id: s.peer_id,
        listen_addrs: s.listen_addrs,
        status,
        failure,
        exit_code: s.exit.and_then(|e| e.code),
        exit_signal: s.exit.and_then(|e| e.signal),
        last_state: s.state,
        log: dir.node_log_relative(s.index),
        mesh_ms: s.mesh_ms,
        timeline: s.timeline,
        last_snapshot: s.last_snapshot,
        result: s.result,
        finish_info,
    }
}

/// The network as configured, beside the numbers: every group pair's resolved profile, the
/// timed events, and when their clock started (ms after the first launch).
fn network_section(
    plan: &testbed_contract::plan::Plan,
    network: &testbed_contract::plan::Network,
    events_zero_ms: f64,
) -> serde_json::Value {
    let groups: Vec<&str> = plan.groups.iter().map(|g| g.id.as_str()).collect();
    let links: Vec<serde_json::Value> = groups
        .iter()
        .flat_map(|f| groups.iter().map(move |t| (*f, *t)))
        .map(|(f, t)| serde_json::json!({ "from": f, "to": t, "profile": network.link_params(f, t) }))
        .collect();
    serde_json::json!({
        "section": network,
        "links": links,
        "events_zero_ms": events_zero_ms,
    })
}

fn next_socket_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
