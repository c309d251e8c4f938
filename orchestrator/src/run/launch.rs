//! Step 2 of a run: everything that must exist before the workload — the runner, the
//! results folder, the telemetry, the control server, the wiring every node is told — and
//! then the fleet's processes, launched in index order. A launch that fails stops the
//! launching; the run then goes straight to collecting what there is.

use crate::control::ControlServer;
use crate::fleet::{Fleet, NodeSlot};
use crate::host_load::HostLoadSampler;
use crate::progress::Progress;
use crate::record::store::RunDir;
use crate::runner::external::ExternalRunner;
use crate::runner::local::LocalRunner;
use crate::runner::netns::NetnsRunner;
use crate::runner::{ControlTransport, NodeExit, Runner};
use crate::spec::{RunSpec, RunnerSel, Wiring};
use crate::telemetry::RunTelemetry;
use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A run from the launch on: what it holds until the record is written.
pub struct Live {
    pub runner: Box<dyn Runner>,
    pub dir: RunDir,
    pub telemetry: RunTelemetry,
    pub server: ControlServer,
    pub wiring: Wiring,
    pub fleet: Fleet,
    pub progress: Progress,
    /// The first launch.
    pub t0: Instant,
    /// Why launching stopped early.
    pub launch_error: Option<String>,
    /// Time zero of the timed network events: the whole fleet had been launched, in ms
    /// after `t0` and on the wall clock (ns since the Unix epoch), which the nodes' receive
    /// times are counted in.
    pub events_zero_ms: f64,
    pub events_zero_unix_ns: u64,
    /// The host's CPU from the first launch on; None where the nodes run elsewhere.
    pub host_load: Option<HostLoadSampler>,
    /// Samples local node processes from `/proc` (none for the external runner).
    pub sampler: Option<crate::sampler::Sampler>,
    /// The orchestrator's CPU seconds when the run launched (its figure is the difference).
    pub cpu_at_launch_s: f64,
}

pub async fn launch(spec: &RunSpec, interrupt: watch::Receiver<bool>) -> Result<Live> {
    let cpu_at_launch_s = crate::host::self_usage().0;
    crate::host::reset_peak_rss();
    let (exit_tx, exit_rx) = mpsc::unbounded_channel();
    // The runner before anything is written: missing privileges are an error with a fix.
    let mut runner = make_runner(spec, exit_tx)?;
    let dir = RunDir::create(&spec.results_root, &spec.plan.name, &spec.run_id)?;
    dir.write_plan(&spec.plan_text, &spec.plan)?;

    // Telemetry first: each node's welcome names the trace collector.
    let telemetry = RunTelemetry::start(
        &spec.plan.telemetry,
        spec.nodes_in_namespaces(),
        &spec.run_id,
        spec.quiet,
    )
    .await?;
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let server = ControlServer::start(&spec.control_listen, Some(&socket_path()), control_tx)
        .await
        .context("starting the control server")?;
    let control_addr = match runner.control_transport() {
        ControlTransport::Tcp => server.endpoints.tcp.clone(),
        ControlTransport::Unix => server
            .endpoints
            .unix
            .clone()
            .context("no unix control socket")?,
    };
    let external_secret = external_secret(spec.runner);
    let wiring = Wiring {
        control_addr,
        tracing: telemetry.tracing(),
        results_dir: dir.path.clone(),
        secret: external_secret
            .clone()
            .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>())),
    };

    let mut launches = Vec::new();
    let mut slots = Vec::new();
    // The witnesses last, after the fleet's indices; they export no traces (their deliveries
    // are not the fleet's).
    for node in spec.nodes.iter().chain(&spec.witnesses) {
        let (launch, mut config) = wiring.launch(node, runner.listen_ip(node.index));
        if spec.is_witness(node.index) {
            config.tracing = None;
        }
        slots.push(NodeSlot::new(config, node.implementation.as_str()));
        launches.push(launch);
    }
    let t0 = Instant::now();
    // The host is sampled from the first launch on, unless the nodes run on other machines.
    let host_load =
        (spec.runner != RunnerSel::External).then(|| HostLoadSampler::start(t0.into_std()));
    let mut fleet = Fleet::new(
        slots,
        control_rx,
        exit_rx,
        interrupt,
        crate::fleet::later(t0, spec.plan.timeout),
    );
    if let Some(w) = spec.witnesses.first() {
        fleet.witnesses_from = w.index;
    }
    // The live metrics are the fleet's: the witnesses stay out of them.
    telemetry.live.set_nodes(
        fleet
            .nodes()
            .iter()
            .filter(|s| !spec.is_witness(s.index()))
            .map(|s| (s.index(), s.group())),
    );
    fleet.live = Some(telemetry.live.clone());
    fleet.local_processes = matches!(spec.runner, RunnerSel::Local | RunnerSel::Netns);
    // The secret is checked where this machine started the processes itself, and where the
    // nodes started elsewhere were given the one this process has (see `external_secret`).
    fleet.auth = crate::fleet::Auth {
        secret: (fleet.local_processes || external_secret.is_some()).then(|| wiring.secret.clone()),
        check_pid: matches!(spec.runner, RunnerSel::Local),
    };
    // Node processes of the local runners are this machine's: sample them from outside.
    let sampler = match spec.runner {
        RunnerSel::Local | RunnerSel::Netns => {
            Some(crate::sampler::Sampler::start().context("starting the /proc sampler thread")?)
        }
        RunnerSel::External => None,
    };
    fleet.sampler = sampler.as_ref().map(|s| s.handle());
    let progress = Progress::new(spec.quiet, &spec.plan.name, &spec.run_id);

    progress.stage("launching", launches.len() as u64);
    let mut launch_error = None;
    for (i, launch) in launches.into_iter().enumerate() {
        let index = launch.index;
        match runner.launch(launch).await {
            Ok(pid) => fleet.set_pid(index, pid),
            Err(e) => {
                launch_error = Some(e.to_string());
                break;
            }
        }
        progress.set(i as u64 + 1);
    }
    // Time zero of timed network events: the whole fleet has been launched.
    runner.workload_started();
    let events_zero_ms = t0.elapsed().as_secs_f64() * 1e3;
    let events_zero_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Ok(Live {
        runner,
        dir,
        telemetry,
        server,
        wiring,
        fleet,
        progress,
        t0,
        launch_error,
        events_zero_ms,
        events_zero_unix_ns,
        host_load,
        sampler,
        cpu_at_launch_s,
    })
}

/// With the external runner, the run's secret is whoever started the nodes' to choose: they
/// hand the same value to the nodes and to this process, in its `TESTBED_RUN_SECRET` (a
/// Kubernetes run: the coordinator pod and every node pod read the run's Secret). None
/// otherwise, or when it is not set: nodes started elsewhere are then not authenticated,
/// which is said once.
fn external_secret(runner: RunnerSel) -> Option<String> {
    if runner != RunnerSel::External {
        return None;
    }
    let secret = std::env::var(testbed_contract::env::RUN_SECRET)
        .ok()
        .filter(|s| !s.is_empty());
    if secret.is_none() {
        tracing::warn!(
            "no {} in the environment: the control channel does not authenticate the nodes",
            testbed_contract::env::RUN_SECRET
        );
    }
    secret
}

/// The runner the spec names.
fn make_runner(spec: &RunSpec, exits: mpsc::UnboundedSender<NodeExit>) -> Result<Box<dyn Runner>> {
    Ok(match spec.runner {
        RunnerSel::Local => Box::new(LocalRunner::new(exits)),
        RunnerSel::Netns => Box::new(NetnsRunner::new(&spec.plan, exits)?),
        RunnerSel::External => Box::new(ExternalRunner::new()),
    })
}

/// Unix socket paths are limited to 108 bytes, so the control socket lives in the temp dir
/// under a short name rather than in a possibly deep results folder (the server removes it).
fn socket_path() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("ptb-{}-{n}.sock", std::process::id()))
}
