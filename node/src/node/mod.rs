//! The node: one event loop (`tokio::select!`) that drives the swarm, the control channel,
//! pending commands and the snapshot timer. Nothing in it blocks: commands that take time
//! (dials, mesh waits, publishing) are jobs stepped after every event.

mod commands;
mod report;
mod startup;

pub use startup::IMPL_VERSION;

use crate::ack::Outcome;
use crate::barrier::Barriers;
use crate::clock::now_ns;
use crate::config::EnvConfig;
use crate::control::{ControlRx, ControlTx, Incoming};
use crate::dialer::{ConnectOp, DisconnectOp};
use crate::exit;
use crate::fault::Fault;
use crate::lifecycle::Lifecycle;
use crate::mesh_wait::{MeshStatus, MeshWait};
use crate::publisher::{Ctx, PublishJob, PublishLog, Step};
use crate::pubsub::{Delivered, Pubsub};
use crate::receiver::{Delivery, Receiver};
use crate::swarm::{Behaviour, BehaviourEvent};
use futures::StreamExt;
use libp2p::Swarm;
use libp2p::metrics::Registry;
use libp2p::swarm::SwarmEvent;
use std::time::Duration;
use testbed_contract::protocol::{NodeConfig, NodeMsg, OrchMsg};
use testbed_contract::results::{ExitReason, MeshOutcome, NodeState, Subscription};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

/// How long the node tries to reach the orchestrator before giving up.
const CONTROL_RETRY: Duration = Duration::from_secs(10);
/// How long the last messages may take to flush at exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a node to its end and returns the process exit code.
pub async fn run(env: EnvConfig) -> u8 {
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return exit::FAILED;
        }
    };
    let connected = tokio::select! {
        c = crate::control::connect(&env.control, CONTROL_RETRY) => c,
        (name, code) = signals.recv() => {
            tracing::warn!("{name} while connecting to the orchestrator");
            return code;
        }
    };
    let (mut rx, tx) = match connected {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return exit::CONTROL;
        }
    };
    let life = Lifecycle::new(now_ns());
    let config = match startup::handshake(&env, &tx, &mut rx, &mut signals, &life).await {
        startup::Handshake::Welcome(config) => config,
        startup::Handshake::End(end) => {
            return report::end_before_swarm(tx, life, env.index, end, CLOSE_TIMEOUT).await;
        }
        startup::Handshake::Lost(code) => return code,
    };
    let welcomed = Instant::now();

    let mut registry = Registry::default();
    let swarm = match crate::swarm::build(
        config.variant,
        &config.gossipsub,
        config.security,
        &mut registry,
    ) {
        Ok(s) => s,
        Err(e) => {
            let end = startup::PreRunEnd::Failed(e.to_string());
            return report::end_before_swarm(tx, life, config.index, end, CLOSE_TIMEOUT).await;
        }
    };
    let mut node = Node::new(*config, swarm, registry, tx, life);
    node.fault = env.fault;
    if node.cfg.node_metrics {
        node.metrics_addr = crate::telemetry::serve_metrics(env.listen_ip, node.registry.clone())
            .await
            .map_err(|e| tracing::warn!(error = %e, "cannot serve node metrics"))
            .ok();
    }
    if let Err(e) = node.listen(env.listen_ip).await {
        return node.fail(e).await;
    }
    node.run(rx, signals, welcomed).await
}

/// Why the loop ended.
enum End {
    Finish(u64),
    Abort(String),
    Signal(&'static str, u8),
    Failed(String),
    ChannelLost(String),
}

struct Node {
    cfg: NodeConfig,
    net: Pubsub,
    registry: std::sync::Arc<Registry>,
    tx: ControlTx,
    life: Lifecycle,
    peer_id: String,
    /// Traces, when the plan turns them on (`None`: every hook is one branch).
    tel: Option<crate::telemetry::Telemetry>,
    /// Where this node serves its libp2p metrics (`node_metrics`).
    metrics_addr: Option<String>,
    receiver: Receiver,
    log: PublishLog,
    next_seq: u64,
    /// Subscription spans, in the order they were opened.
    subscriptions: Vec<Subscription>,
    connects: Vec<ConnectOp>,
    disconnects: Vec<DisconnectOp>,
    mesh_waits: Vec<MeshWait>,
    /// The outcome of the last finished mesh wait, for the result.
    mesh: Option<MeshOutcome>,
    publishes: Vec<PublishJob>,
    barriers: Barriers,
    next_snapshot: Option<Instant>,
    rss: crate::proc_stats::RssProbe,
    /// A fault injected on purpose (`TESTBED_FAULT`, a test aid); None in real runs.
    fault: Option<Fault>,
    /// How late this loop gets to its own probe ticks.
    loop_lag: crate::loop_lag::LoopLagProbe,
    /// The peer each first delivery came from.
    first_hops: crate::first_hops::FirstHopLog,
}

impl Node {
    fn new(
        cfg: NodeConfig,
        swarm: Swarm<Behaviour>,
        registry: Registry,
        tx: ControlTx,
        life: Lifecycle,
    ) -> Self {
        let peer_id = swarm.local_peer_id().to_string();
        let tel = crate::telemetry::Telemetry::start(&cfg, &peer_id, life.timeline());
        Node {
            tel,
            metrics_addr: None,
            receiver: Receiver::new(cfg.index, cfg.origin_groups.clone()),
            net: Pubsub::new(swarm, cfg.variant),
            cfg,
            registry: std::sync::Arc::new(registry),
            tx,
            life,
            peer_id,
            log: PublishLog::default(),
            next_seq: 0,
            subscriptions: Vec::new(),
            connects: Vec::new(),
            disconnects: Vec::new(),
            mesh_waits: Vec::new(),
            mesh: None,
            publishes: Vec::new(),
            barriers: Barriers::default(),
            next_snapshot: None,
            rss: crate::proc_stats::RssProbe::new(),
            fault: None,
            loop_lag: crate::loop_lag::LoopLagProbe::new(Instant::now()),
            first_hops: crate::first_hops::FirstHopLog::default(),
        }
    }

    /// The event loop, until the run ends. Snapshots start one interval after the welcome.
    async fn run(mut self, mut rx: ControlRx, mut signals: Signals, welcomed: Instant) -> u8 {
        let interval = Duration::from_millis(self.cfg.snapshot_interval_ms);
        self.next_snapshot = (!interval.is_zero()).then(|| welcomed + interval);
        // Precise to tens of µs (tokio's timer rounds up to whole ms): paced messages leave
        // when they are due.
        let mut timer = match crate::wake_timer::WakeTimer::new() {
            Ok(t) => t,
            Err(e) => {
                return self
                    .fail(format!("cannot create the wake-up timer: {e}"))
                    .await;
            }
        };
        loop {
            let wake = self.progress();
            if let Some(at) = wake {
                if at <= Instant::now() {
                    // Work is due at once (publishing back to back): let the connection
                    // tasks run first, so the messages we queue actually leave.
                    tokio::task::yield_now().await;
                }
                // Re-arming costs a syscall; skip it when unchanged.
                if timer.deadline() != Some(at)
                    && let Err(e) = timer.arm(at)
                {
                    return self
                        .fail(format!("cannot arm the wake-up timer: {e}"))
                        .await;
                }
            }
            let end = tokio::select! {
                ev = self.net.swarm.select_next_some() => self.on_swarm_event(ev),
                incoming = rx.recv() => match incoming {
                    Ok(Some(Incoming::Msg(msg))) => self.on_orch_msg(msg),
                    Ok(Some(Incoming::Unknown { error, command_id })) => {
                        self.on_unknown(error, command_id);
                        None
                    }
                    Ok(None) => Some(End::ChannelLost("the orchestrator closed the control channel".into())),
                    Err(e) => Some(End::ChannelLost(e.to_string())),
                },
                r = timer.wait(), if wake.is_some() => match r {
                    Ok(()) => None,
                    Err(e) => Some(End::Failed(format!("the wake-up timer failed: {e}"))),
                },
                (name, code) = signals.recv() => Some(End::Signal(name, code)),
            };
            if let Some(end) = end {
                return self.end(end).await;
            }
        }
    }

    /// Queues a message to the orchestrator.
    fn send(&self, msg: &NodeMsg) {
        if !self.tx.send(msg) {
            tracing::debug!("control channel closed; message dropped");
        }
    }

    fn ack(&self, id: u64, outcome: Outcome) {
        self.send(&outcome.into_ack(id));
    }

    /// Records and announces a lifecycle transition (if it moves forward).
    fn advance(&mut self, state: NodeState, detail: Option<String>) {
        if let Some(msg) = self.life.advance(state, now_ns(), detail) {
            tracing::info!(state = state.as_str(), "lifecycle");
            self.send(&msg);
            self.trace_state();
        }
    }

    /// Gives the latest lifecycle transition to the tracer.
    fn trace_state(&mut self) {
        if let (Some(t), Some(c)) = (self.tel.as_mut(), self.life.timeline().last()) {
            t.on_state(c.state, c.at_ns, c.detail.as_deref());
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) -> Option<End> {
        match ev {
            SwarmEvent::Behaviour(ev) => {
                if let Delivered::Message(data) = self.net.on_event(&ev) {
                    let now = now_ns();
                    match self.receiver.on_message(data, now) {
                        Delivery::Malformed(e) => tracing::debug!(error = %e, "malformed payload"),
                        Delivery::New { origin, seq, .. } => {
                            if let Some(from) = crate::first_hops::propagation_source(&ev) {
                                self.first_hops.record(origin, seq, from);
                            }
                            if self.cfg.report_deliveries {
                                self.send(&NodeMsg::Delivered {
                                    origin,
                                    seq,
                                    at_ns: now,
                                });
                            }
                            if let Some(t) = self.tel.as_mut() {
                                t.on_delivery(data, now, crate::telemetry::forwarded_by(&ev));
                            }
                        }
                        _ => {}
                    }
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                if let Some(t) = self.tel.as_mut() {
                    t.event(
                        "connection established",
                        vec![opentelemetry::KeyValue::new("peer", peer_id.to_string())],
                    );
                }
                self.net.on_connection_established(peer_id);
                for op in &mut self.connects {
                    op.on_established(&peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                if let Some(t) = self.tel.as_mut() {
                    let mut attrs = vec![opentelemetry::KeyValue::new("peer", peer_id.to_string())];
                    if let Some(c) = &cause {
                        attrs.push(opentelemetry::KeyValue::new("cause", c.to_string()));
                    }
                    t.event("connection closed", attrs);
                }
                if num_established == 0 {
                    self.net.on_peer_gone(&peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                tracing::debug!(%error, "dial failed");
                for op in &mut self.connects {
                    op.on_dial_error(connection_id, &error, &self.net);
                }
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(%error, "listener error");
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                let why = match reason {
                    Ok(()) => "closed".to_owned(),
                    Err(e) => e.to_string(),
                };
                return Some(End::Failed(format!("the libp2p listener stopped: {why}")));
            }
            _ => {}
        }
        None
    }

    fn on_orch_msg(&mut self, msg: OrchMsg) -> Option<End> {
        match msg {
            OrchMsg::Command { id, cmd } => return self.on_command(id, cmd),
            OrchMsg::Abort { reason } if self.fault == Some(Fault::IgnoreAbort) => {
                tracing::warn!(%reason, "test aid: ignoring abort");
            }
            OrchMsg::Abort { reason } => return Some(End::Abort(reason)),
            OrchMsg::Released { barrier, count } => {
                if !self.barriers.on_released(&barrier, count) {
                    tracing::debug!(%barrier, "released a barrier nobody here waits for");
                }
            }
            OrchMsg::Welcome { .. } => tracing::warn!("ignoring a second welcome"),
            // Answered by the control channel's reader as it arrives (control.rs).
            OrchMsg::Ping { .. } => {}
        }
        None
    }

    fn on_unknown(&mut self, error: String, command_id: Option<u64>) {
        tracing::warn!(%error, "unreadable control message");
        if let Some(id) = command_id {
            self.ack(id, Outcome::failed(format!("unknown command: {error}")));
        }
    }

    /// Steps every pending job, sends what is due, and returns when to wake up next.
    fn progress(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let mut wake = Wake::default();
        // First, so the lateness is the loop's, not the time the jobs below take.
        self.loop_lag.check(now, now_ns);
        wake.at(Some(self.loop_lag.due()));

        let mut i = 0;
        while i < self.connects.len() {
            wake.at(self.connects[i].poll(now, &mut self.net));
            if let Some(outcome) = self.connects[i].outcome() {
                let op = self.connects.swap_remove(i);
                self.advance(NodeState::Connected, None);
                self.ack(op.cmd_id, outcome);
            } else {
                i += 1;
            }
        }

        let mut i = 0;
        while i < self.disconnects.len() {
            if let Some(outcome) = self.disconnects[i].outcome(now, &self.net) {
                let op = self.disconnects.swap_remove(i);
                self.ack(op.cmd_id, outcome);
            } else {
                // ConnectionClosed events wake the loop; the deadline bounds the wait.
                wake.at(Some(self.disconnects[i].deadline()));
                i += 1;
            }
        }

        let mut i = 0;
        while i < self.mesh_waits.len() {
            match self.mesh_waits[i].check(now, &self.net) {
                MeshStatus::Waiting => {
                    wake.at(Some(self.mesh_waits[i].wake_at(now)));
                    i += 1;
                }
                MeshStatus::Done { outcome, why_not } => {
                    let w = self.mesh_waits.swap_remove(i);
                    if self.mesh_waits.is_empty() {
                        // Ready also without a mesh: the wait is over and the run goes on;
                        // the detail and the ack's `meshed` say there is none.
                        self.advance(NodeState::Ready, why_not);
                    }
                    self.ack(w.cmd_id, Outcome::ok(mesh_info(&outcome)));
                    self.mesh = Some(outcome);
                }
                MeshStatus::TimedOut { error, outcome } => {
                    let w = self.mesh_waits.swap_remove(i);
                    self.ack(
                        w.cmd_id,
                        Outcome {
                            error: Some(error),
                            info: mesh_info(&outcome),
                        },
                    );
                    self.mesh = Some(outcome);
                }
            }
        }

        let mut i = 0;
        while i < self.publishes.len() {
            let mut ctx = Ctx {
                net: &mut self.net,
                log: &mut self.log,
                next_seq: &mut self.next_seq,
                origin: self.cfg.index,
                tel: self.tel.as_mut(),
            };
            let step = self.publishes[i].step(now, &mut ctx);
            if self.publishes[i].has_published() {
                self.advance(NodeState::Running, None);
            }
            match step {
                Step::Wait(at) => {
                    wake.at(Some(at));
                    i += 1;
                }
                Step::Done(outcome) => {
                    let job = self.publishes.swap_remove(i);
                    self.ack(job.cmd_id, outcome);
                }
            }
        }

        if let Some(at) = self.next_snapshot {
            if at <= now {
                let snapshot = self.snapshot();
                self.send(&NodeMsg::Snapshot(snapshot));
                let interval = Duration::from_millis(self.cfg.snapshot_interval_ms);
                // Keep the cadence, but never fire a backlog of snapshots after a stall.
                let next = at + interval;
                self.next_snapshot = Some(if next <= now { now + interval } else { next });
            }
            wake.at(self.next_snapshot);
        }
        wake.0
    }

    /// Ends the run: answers what is pending, sends the result, closes the channel.
    async fn end(mut self, end: End) -> u8 {
        let (exit_reason, error, code, finish_id) = match end {
            End::Finish(id) => (ExitReason::Finished, None, exit::OK, Some(id)),
            End::Abort(reason) => (
                ExitReason::Aborted,
                Some(format!("aborted by the orchestrator: {reason}")),
                exit::OK,
                None,
            ),
            End::Signal(name, code) => (
                ExitReason::Aborted,
                Some(format!("stopped by {name}")),
                code,
                None,
            ),
            End::Failed(error) => return self.fail(error).await,
            End::ChannelLost(why) => {
                // Nobody to report to: leave at once so the runner sees the exit.
                tracing::error!("control channel lost: {why}");
                return exit::CONTROL;
            }
        };
        self.advance(NodeState::Draining, error.clone());
        self.cancel_pending("the node is stopping");
        self.finish_with(exit_reason, error, finish_id).await;
        code
    }

    /// Fails the node: state `failed`, a result with `exit: error`, exit code 1.
    async fn fail(mut self, error: String) -> u8 {
        tracing::error!("{error}");
        if let Some(msg) = self.life.fail(now_ns(), error.clone()) {
            self.send(&msg);
            self.trace_state();
        }
        self.cancel_pending(&format!("the node failed: {error}"));
        self.finish_with(ExitReason::Error, Some(error), None).await;
        exit::FAILED
    }

    /// Answers every pending command with a failure.
    fn cancel_pending(&mut self, why: &str) {
        let ids: Vec<u64> = self
            .connects
            .drain(..)
            .map(|o| o.cmd_id)
            .chain(self.disconnects.drain(..).map(|o| o.cmd_id))
            .chain(self.mesh_waits.drain(..).map(|o| o.cmd_id))
            .chain(self.publishes.drain(..).map(|o| o.cmd_id))
            .collect();
        for id in ids {
            self.ack(id, Outcome::failed(format!("cancelled: {why}")));
        }
    }
}

fn mesh_info(outcome: &MeshOutcome) -> serde_json::Value {
    serde_json::to_value(outcome).expect("a mesh outcome always serializes")
}

/// The earliest of several wake-up times.
#[derive(Default)]
struct Wake(Option<Instant>);

impl Wake {
    fn at(&mut self, t: Option<Instant>) {
        if let Some(t) = t {
            self.0 = Some(self.0.map_or(t, |w| w.min(t)));
        }
    }
}

/// SIGTERM and SIGINT, as one stream.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next signal's name and the exit code it leads to. Cancel-safe.
    async fn recv(&mut self) -> (&'static str, u8) {
        tokio::select! {
            _ = self.term.recv() => ("SIGTERM", exit::SIGTERM),
            _ = self.int.recv() => ("SIGINT", exit::SIGINT),
        }
    }
}
