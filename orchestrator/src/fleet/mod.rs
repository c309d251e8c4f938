//! The orchestrator's view of the fleet: one [`NodeSlot`] per node, fed by control-channel
//! events and process exits. Every wait in a run goes through [`Fleet::wait_until`], so a
//! crash, a protocol violation, Ctrl-C or the plan's deadline is noticed wherever the run is.

mod ack_tally;
mod liveness;
mod slot;

pub use ack_tally::AckTally;
pub use liveness::{parse_state, proc_state};

pub use slot::NodeSlot;

use crate::control::barrier::Barriers;
use crate::control::{ConnId, ControlEvent};
use crate::record::NodeStatus;
use crate::runner::NodeExit;
use std::collections::{HashMap, HashSet};
use testbed_contract::protocol::{Command, NodeMsg, OrchMsg, Secret};
use testbed_contract::results::{ExitReason, NodeState, StateChange};
use testbed_contract::{PROTOCOL_VERSION, SUPPORTED_PROTOCOLS};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A node's answer to a ping: its clock when it read the ping, and the orchestrator's wall
/// clock (ns since the Unix epoch) when the answer was handled here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    pub index: u32,
    pub at_ns: u64,
    pub received_ns: u64,
}

/// `at + d`, or a moment a century away where that is past what the clock represents:
/// the run's arithmetic never panics on a duration, whatever validation let through.
pub fn later(at: Instant, d: std::time::Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(std::time::Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(at)
}

/// [`later`] from now.
pub fn after(d: std::time::Duration) -> Instant {
    later(Instant::now(), d)
}

#[derive(Debug, Clone)]
pub struct AckInfo {
    pub index: u32,
    pub ok: bool,
    pub error: Option<String>,
    pub info: serde_json::Value,
}

/// Why a wait ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// One or more nodes failed (see the slots' faults).
    Fault,
    /// The plan's overall timeout passed.
    Timeout,
    /// SIGINT or SIGTERM.
    Interrupted,
}

pub struct Fleet {
    nodes: Vec<NodeSlot>,
    conns: HashMap<ConnId, u32>,
    unclaimed: HashMap<ConnId, mpsc::UnboundedSender<OrchMsg>>,
    control: mpsc::UnboundedReceiver<ControlEvent>,
    exits: mpsc::UnboundedReceiver<NodeExit>,
    interrupt: watch::Receiver<bool>,
    acks: HashMap<u64, AckInfo>,
    owners: HashMap<u64, u32>,
    /// Bumped on every ack, fault and exit: a wait's condition over many commands looks at
    /// them again only when this moved (at 1000 nodes a control message arrives every
    /// millisecond, and a scan of every id or node per message was the orchestrator's cost).
    changes: u64,
    /// Slots with a fault, so `has_faults` is not a scan of the fleet per message.
    faulted: usize,
    /// Commands whose failure is an outcome to record, not a node fault (churn).
    tolerated: HashSet<u64>,
    next_cmd: u64,
    barriers: Barriers,
    /// Pongs by ping id, not yet taken by whoever sent the ping.
    pongs: HashMap<u64, Pong>,
    /// The run's hard deadline (plan timeout).
    pub deadline: Instant,
    /// Describes what the run is doing, for failure messages ("during publish (phase 3)").
    pub activity: String,
    /// Problems not attributable to one node (e.g. a connection claiming an unknown index).
    pub anomalies: Vec<String>,
    /// Faults count as failures only while this is false (finish tolerates exits).
    pub finishing: bool,
    /// The live Prometheus view of the run, fed one node at a time as events arrive.
    pub live: Option<std::sync::Arc<crate::telemetry::metrics::LiveMetrics>>,
    /// First deliveries the nodes reported (`delivered`, only sent when the welcome asked):
    /// `(origin, seq)` → `(receiver, receive time ns as the receiver measured it)`.
    deliveries: HashMap<(u32, u64), Vec<(u32, u64)>>,
    /// The nodes' pids are processes of this machine (local and netns runners), whose state
    /// `/proc` shows.
    pub local_processes: bool,
    next_liveness: Instant,
    last_ping: Instant,
    next_ping_id: u64,
    /// What a hello must prove before it may claim a slot.
    pub auth: Auth,
    /// Told of every node process as it starts, to sample it from `/proc`.
    pub sampler: Option<crate::sampler::SamplerHandle>,
    /// The first witness's index (`u32::MAX`: none). Witnesses are slots like any node, but
    /// no phase selects them, no fleet count includes them and the sampler leaves them out.
    pub witnesses_from: u32,
}

/// How a connection proves it is one of the run's nodes.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// The run's secret, which the hello must carry (None: not checked).
    pub secret: Option<String>,
    /// The hello's pid must be the process the runner started for that index, or one of
    /// its descendants (a wrapper script's child).
    pub check_pid: bool,
}

impl Fleet {
    pub fn new(
        nodes: Vec<NodeSlot>,
        control: mpsc::UnboundedReceiver<ControlEvent>,
        exits: mpsc::UnboundedReceiver<NodeExit>,
        interrupt: watch::Receiver<bool>,
        deadline: Instant,
    ) -> Fleet {
        Fleet {
            nodes,
            conns: HashMap::new(),
            unclaimed: HashMap::new(),
            control,
            exits,
            interrupt,
            acks: HashMap::new(),
            owners: HashMap::new(),
            changes: 0,
            faulted: 0,
            tolerated: HashSet::new(),
            next_cmd: 1,
            barriers: Barriers::default(),
            pongs: HashMap::new(),
            deadline,
            activity: "launch".into(),
            anomalies: Vec::new(),
            finishing: false,
            live: None,
            deliveries: HashMap::new(),
            local_processes: false,
            next_liveness: Instant::now(),
            last_ping: Instant::now(),
            next_ping_id: 1,
            auth: Auth::default(),
            sampler: None,
            witnesses_from: u32::MAX,
        }
    }

    /// Every node, in index order.
    pub fn nodes(&self) -> &[NodeSlot] {
        &self.nodes
    }

    pub fn node(&self, index: u32) -> Option<&NodeSlot> {
        self.nodes.get(index as usize)
    }

    /// Nodes in the fleet (launched or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds a node launched while the run goes on (churn); it takes the next index.
    pub fn add(&mut self, slot: NodeSlot) {
        self.publish_live_slot(&slot);
        if let (Some(s), Some(pid)) = (&self.sampler, slot.pid) {
            s.watch(slot.index, pid);
        }
        self.nodes.push(slot);
    }

    /// Node `index`'s process, once the runner started it.
    pub fn set_pid(&mut self, index: u32, pid: Option<u32>) {
        if let Some(s) = self.nodes.get_mut(index as usize) {
            s.pid = pid;
        }
        if let (Some(s), Some(pid)) = (&self.sampler, pid)
            && !self.is_witness(index)
        {
            s.watch(index, pid);
        }
    }

    /// Whether node `index` is a witness rather than a member of the fleet.
    pub fn is_witness(&self, index: u32) -> bool {
        index >= self.witnesses_from
    }

    /// The live members of the fleet: every live node but the witnesses.
    pub fn members(&self) -> impl Iterator<Item = &NodeSlot> {
        self.alive().filter(|s| !self.is_witness(s.index()))
    }

    /// Marks a node as stopped on purpose (churn): from now on its exit and its closed
    /// channel are expected. False when it had already ended.
    pub fn remove(&mut self, index: u32) -> bool {
        match self.nodes.get_mut(index as usize) {
            Some(s) if !s.ended() => {
                s.removed = true;
                true
            }
            _ => false,
        }
    }

    /// A `wait_mesh` subscribe's outcome as the node acknowledged it: its mesh ready after
    /// `ms` (the slowest of its subscriptions counts), and whether it truly meshed (`None`: the
    /// node does not say; one subscribe without a mesh makes the node not meshed).
    pub fn note_mesh(&mut self, index: u32, ms: Option<f64>, meshed: Option<bool>) {
        if let Some(s) = self.nodes.get_mut(index as usize) {
            if let Some(ms) = ms {
                s.mesh_ms = Some(s.mesh_ms.map_or(ms, |m: f64| m.max(ms)));
            }
            if let Some(ok) = meshed {
                s.meshed = Some(s.meshed.unwrap_or(true) && ok);
            }
        }
    }

    /// The slots, once the run is over (the fleet is empty afterwards).
    pub fn take_nodes(&mut self) -> Vec<NodeSlot> {
        std::mem::take(&mut self.nodes)
    }

    pub fn has_faults(&self) -> bool {
        self.faulted > 0
    }

    pub fn alive(&self) -> impl Iterator<Item = &NodeSlot> {
        self.nodes.iter().filter(|n| n.alive())
    }

    /// Sends a command; returns its id, or None when the node cannot be reached.
    pub fn command(&mut self, index: u32, cmd: Command) -> Option<u64> {
        let id = self.next_cmd;
        self.next_cmd += 1;
        let publish = match &cmd {
            Command::Publish { count, .. } => Some(*count),
            _ => None,
        };
        let slot = self.nodes.get_mut(index as usize)?;
        if !slot.alive() {
            return None;
        }
        slot.tx.as_ref()?.send(OrchMsg::Command { id, cmd }).ok()?;
        // Every publish asked of a node bounds what its result may claim.
        if let Some(count) = publish {
            slot.publishes.push((id, count));
        }
        self.owners.insert(id, index);
        Some(id)
    }

    /// Like [`Fleet::command`], but a failed ack does not fault the node: under churn a
    /// dial to a peer that just left, or a publish nobody is subscribed to yet, is an outcome.
    pub fn command_tolerated(&mut self, index: u32, cmd: Command) -> Option<u64> {
        let id = self.command(index, cmd)?;
        self.tolerated.insert(id);
        Some(id)
    }

    pub fn send(&self, index: u32, msg: OrchMsg) {
        if let Some(tx) = self.nodes.get(index as usize).and_then(|s| s.tx.as_ref()) {
            let _ = tx.send(msg);
        }
    }

    /// Whether the pong of ping `id` arrived.
    pub fn has_pong(&self, id: u64) -> bool {
        self.pongs.contains_key(&id)
    }

    /// Takes the pong of ping `id`, if it arrived.
    pub fn take_pong(&mut self, id: u64) -> Option<Pong> {
        self.pongs.remove(&id)
    }

    /// Who reported the first delivery of `(origin, seq)`, and when (the receiver's clock).
    pub fn deliveries_of(&self, origin: u32, seq: u64) -> &[(u32, u64)] {
        self.deliveries
            .get(&(origin, seq))
            .map_or(&[], Vec::as_slice)
    }

    pub fn ack(&self, id: u64) -> Option<&AckInfo> {
        self.acks.get(&id)
    }

    /// How many of the tally's commands are acked (recounted only after a change).
    pub fn acked(&self, tally: &mut AckTally) -> usize {
        tally.recount(self.changes, |id| self.acks.contains_key(&id))
    }

    /// Marks a node failed (first reason wins) unless it is already done or removed.
    pub fn fault(&mut self, index: u32, status: NodeStatus, reason: String) {
        let activity = self.activity.clone();
        if let Some(slot) = self.nodes.get_mut(index as usize)
            && slot.fault.is_none()
            && !slot.removed
        {
            tracing::warn!(node = index, "{reason}");
            slot.fault = Some((status, format!("{reason} (during {activity})")));
            slot.failed_at = Some(chrono::Utc::now());
            self.faulted += 1;
            self.changes += 1;
        }
    }

    /// Processes events until `cond` holds. Ends early on a node fault (unless `finishing`),
    /// on interrupt, or at `until`/the run deadline, whichever is first; `Ok(false)` means
    /// `until` passed with `cond` still false.
    pub async fn wait_until(
        &mut self,
        until: Instant,
        mut cond: impl FnMut(&Fleet) -> bool,
    ) -> Result<bool, Stop> {
        loop {
            if cond(self) {
                return Ok(true);
            }
            // While finishing (collecting results after any ending) only `until` bounds the
            // wait: the interrupt flag and the deadline that ended the drive are already set,
            // and honouring them here would give up every result still on its way.
            if !self.finishing {
                self.check()?;
            }
            let limit = if self.finishing {
                until
            } else {
                until.min(self.deadline)
            };
            let watch_interrupt = !self.finishing;
            tokio::select! {
                ev = self.control.recv() => match ev {
                    Some(ev) => self.on_control(ev),
                    None => return Err(Stop::Fault),
                },
                Some(exit) = self.exits.recv() => self.on_exit(exit),
                _ = self.interrupt.changed(), if watch_interrupt => {}
                _ = tokio::time::sleep_until(self.next_liveness), if self.next_liveness < limit => {
                    self.liveness();
                }
                _ = tokio::time::sleep_until(limit) => {
                    if cond(self) {
                        return Ok(true);
                    }
                    return if !self.finishing && limit >= self.deadline {
                        Err(Stop::Timeout)
                    } else {
                        Ok(false)
                    };
                }
            }
        }
    }

    /// Whether the drive must stop now: a node fault, an interrupt or the deadline. Loops that
    /// can run without waiting (a churn schedule already behind) call this every turn.
    pub fn check(&self) -> Result<(), Stop> {
        if !self.finishing && self.has_faults() {
            return Err(Stop::Fault);
        }
        if *self.interrupt.borrow() {
            return Err(Stop::Interrupted);
        }
        if Instant::now() >= self.deadline {
            return Err(Stop::Timeout);
        }
        Ok(())
    }

    /// Looks at every live node between its messages: a process stopped for
    /// [`liveness::STOPPED_GRACE`] is hung; a node silent for [`liveness::PING_SILENCE`]
    /// despite pings is hung too.
    fn liveness(&mut self) {
        // On a saturated host the orchestrator itself runs late: what the nodes sent may be
        // waiting in the queue, and the time this look came late is the orchestrator's
        // silence, not the nodes'. Read the queue first and do not count that time.
        while let Ok(ev) = self.control.try_recv() {
            self.on_control(ev);
        }
        let now = Instant::now();
        let late = now.saturating_duration_since(self.next_liveness);
        if late > liveness::CHECK_EVERY {
            for s in self.nodes.iter_mut() {
                if let Some(heard) = s.last_heard {
                    s.last_heard = Some((heard + late).min(now));
                }
            }
        }
        self.next_liveness = now + liveness::CHECK_EVERY;
        let ping = now.duration_since(self.last_ping) >= liveness::PING_EVERY;
        if ping {
            self.last_ping = now;
        }
        let mut hung = Vec::new();
        let mut pings = Vec::new();
        let local = self.local_processes;
        for s in self.nodes.iter_mut().filter(|s| s.alive()) {
            let stopped = local
                .then(|| s.pid.and_then(proc_state))
                .flatten()
                .filter(|&state| liveness::is_stopped(state));
            if let Some(state) = stopped {
                let since = *s.stopped_since.get_or_insert(now);
                if now.duration_since(since) >= liveness::STOPPED_GRACE {
                    hung.push((
                        s.index,
                        format!(
                            "node {} is stopped (process state {state} for {:.1} s: a stop signal or a tracer)",
                            s.index,
                            now.duration_since(since).as_secs_f64()
                        ),
                    ));
                }
                continue;
            }
            s.stopped_since = None;
            if s.protocol < 2 {
                continue;
            }
            if let Some(heard) = s.last_heard
                && now.duration_since(heard) >= liveness::PING_SILENCE
            {
                hung.push((
                    s.index,
                    format!(
                        "node {} answered no ping for {} s",
                        s.index,
                        now.duration_since(heard).as_secs()
                    ),
                ));
            } else if ping {
                pings.push(s.index);
            }
        }
        for i in pings {
            let id = self.next_ping_id;
            self.next_ping_id = (self.next_ping_id + 1) % liveness::MAX_PING_ID;
            self.send(i, OrchMsg::Ping { id });
        }
        for (i, why) in hung {
            self.fault(i, NodeStatus::Hung, why);
        }
    }

    /// Waits for acks of `ids`; nodes that have not answered by `until` are marked hung.
    pub async fn await_acks(
        &mut self,
        ids: &[u64],
        until: Instant,
        what: &str,
    ) -> Result<(), Stop> {
        let mut tally = AckTally::new(ids);
        let done = |f: &Fleet| {
            tally.recount(f.changes, |id| f.acks.contains_key(&id) || f.owner_gone(id)) == ids.len()
        };
        match self.wait_until(until, done).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.mark_hung(ids, what);
                Err(Stop::Fault)
            }
            // The plan's timeout is the run's ending, not the nodes' fault: a node busy with a
            // long command is asked for its result like every other.
            Err(e) => Err(e),
        }
    }

    fn owner_gone(&self, id: u64) -> bool {
        self.owners
            .get(&id)
            .is_none_or(|&i| !self.nodes[i as usize].alive())
    }

    fn mark_hung(&mut self, ids: &[u64], what: &str) {
        let missing: Vec<u32> = ids
            .iter()
            .filter(|id| !self.acks.contains_key(id))
            .filter_map(|id| self.owners.get(id).copied())
            .filter(|&i| self.nodes[i as usize].alive())
            .collect();
        for i in missing {
            self.fault(
                i,
                NodeStatus::Hung,
                format!("node {i} did not finish {what} in time"),
            );
        }
    }

    /// Shows node `index`'s latest state in the live metrics.
    fn publish_live(&self, index: u32) {
        if let Some(slot) = self.nodes.get(index as usize) {
            self.publish_live_slot(slot);
        }
    }

    fn publish_live_slot(&self, slot: &NodeSlot) {
        if let Some(live) = &self.live
            && !self.is_witness(slot.index())
        {
            live.on_node(slot.update());
        }
    }

    fn on_exit(&mut self, exit: NodeExit) {
        self.changes += 1;
        let index = exit.index;
        self.on_exit_inner(exit);
        self.publish_live(index);
    }

    fn on_exit_inner(&mut self, exit: NodeExit) {
        let finishing = self.finishing;
        let Some(slot) = self.nodes.get_mut(exit.index as usize) else {
            return;
        };
        slot.exit = Some(exit);
        let expected = slot.removed || slot.result.is_some() || finishing;
        if let Some((_, reason)) = slot.fault.as_mut() {
            // The channel closed first; add how the process ended.
            if !reason.contains("process ") {
                reason.push_str(&format!("; process {exit}"));
            }
        } else if !expected {
            let i = exit.index;
            self.fault(i, NodeStatus::Crashed, format!("node {i} {exit}"));
        }
    }

    fn on_control(&mut self, ev: ControlEvent) {
        match ev {
            ControlEvent::Opened { conn, sender } => {
                self.unclaimed.insert(conn, sender);
            }
            ControlEvent::Message { conn, msg } => {
                if let Some(&i) = self.conns.get(&conn) {
                    self.nodes[i as usize].last_heard = Some(Instant::now());
                }
                self.on_message(conn, msg);
                if let Some(&i) = self.conns.get(&conn) {
                    self.publish_live(i);
                }
            }
            ControlEvent::Malformed {
                conn,
                error,
                excerpt,
            } => match self.conns.get(&conn).copied() {
                Some(i) => self.fault(
                    i,
                    NodeStatus::Failed,
                    format!("node {i} sent a malformed control message ({error}): {excerpt}"),
                ),
                None => self.anomalies.push(format!(
                    "a connection sent a malformed message before hello ({error}): {excerpt}"
                )),
            },
            ControlEvent::Closed { conn } => {
                self.unclaimed.remove(&conn);
                if let Some(i) = self.conns.remove(&conn) {
                    let finishing = self.finishing;
                    let slot = &mut self.nodes[i as usize];
                    slot.tx = None;
                    if slot.result.is_none() && !slot.removed && !finishing {
                        self.fault(
                            i,
                            NodeStatus::Crashed,
                            format!("node {i} closed its control channel without sending a result"),
                        );
                    }
                }
            }
        }
    }

    fn on_message(&mut self, conn: ConnId, msg: NodeMsg) {
        let Some(&i) = self.conns.get(&conn) else {
            return self.on_first_message(conn, msg);
        };
        let slot = &mut self.nodes[i as usize];
        match msg {
            NodeMsg::Hello { .. } => {
                self.fault(i, NodeStatus::Failed, format!("node {i} sent hello twice"));
            }
            NodeMsg::Listening {
                peer_id,
                listen_addrs,
                metrics_addr,
            } => {
                slot.peer_id = Some(peer_id);
                slot.listen_addrs = listen_addrs;
                slot.metrics_addr = metrics_addr;
            }
            NodeMsg::State {
                state,
                at_ns,
                detail,
            } => {
                slot.state = state;
                slot.timeline.push(StateChange {
                    state,
                    at_ns,
                    detail: detail.clone(),
                });
                if state == NodeState::Failed {
                    let d = detail.unwrap_or_else(|| "no detail".into());
                    self.fault(i, NodeStatus::Failed, format!("node {i} failed: {d}"));
                }
            }
            NodeMsg::Ack {
                id,
                ok,
                error,
                info,
            } => {
                // While finishing, commands cut short by finish/abort are expected to fail.
                if !ok && !self.finishing && !self.tolerated.contains(&id) {
                    let e = error.clone().unwrap_or_else(|| "no reason given".into());
                    self.fault(
                        i,
                        NodeStatus::Failed,
                        format!("node {i}: command {id} failed: {e}"),
                    );
                }
                self.changes += 1;
                self.acks.insert(
                    id,
                    AckInfo {
                        index: i,
                        ok,
                        error,
                        info,
                    },
                );
            }
            NodeMsg::Snapshot(s) => slot.last_snapshot = Some(s),
            // Stamped here, at once: the wait since the node's send only widens the round
            // trip, so it is inside the offset's uncertainty.
            // A liveness pong only proves the node is alive (`last_heard`, above); the clock's
            // pongs are kept for the clock measurement to take.
            NodeMsg::Pong { id, .. } if id <= liveness::MAX_PING_ID => {}
            NodeMsg::Pong { id, at_ns } => {
                let received_ns = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                self.pongs.insert(
                    id,
                    Pong {
                        index: i,
                        at_ns,
                        received_ns,
                    },
                );
            }
            NodeMsg::Delivered { origin, seq, at_ns } => {
                self.deliveries
                    .entry((origin, seq))
                    .or_default()
                    .push((i, at_ns));
            }
            NodeMsg::Signal { barrier, target } => {
                if let Some((nodes, count)) = self.barriers.signal(&barrier, i, target) {
                    for n in nodes {
                        self.send(
                            n,
                            OrchMsg::Released {
                                barrier: barrier.clone(),
                                count,
                            },
                        );
                    }
                }
            }
            NodeMsg::Result(r) => {
                if r.index != i {
                    self.fault(
                        i,
                        NodeStatus::Failed,
                        format!("node {i} sent a result for node {}", r.index),
                    );
                    return;
                }
                let err =
                    (r.exit == ExitReason::Error).then(|| r.error.clone().unwrap_or_default());
                slot.result = Some(*r);
                if let Some(e) = err {
                    self.fault(
                        i,
                        NodeStatus::Failed,
                        format!("node {i} ended with an error: {e}"),
                    );
                }
            }
        }
    }

    /// Why a hello claiming `index` from `pid` is not one of this run's nodes, if it is not.
    fn refuse(&self, index: u32, pid: u32, secret: &Secret) -> Option<&'static str> {
        if let Some(expected) = &self.auth.secret
            && !secret.matches(expected)
        {
            return Some("wrong or missing run secret");
        }
        if self.auth.check_pid
            && let Some(launched) = self.nodes.get(index as usize).and_then(|s| s.pid)
            && !liveness::descends_from(pid, launched)
        {
            return Some("its pid is not the process started for that node");
        }
        None
    }

    fn on_first_message(&mut self, conn: ConnId, msg: NodeMsg) {
        let Some(tx) = self.unclaimed.remove(&conn) else {
            return;
        };
        let NodeMsg::Hello {
            protocol,
            index,
            pid,
            implementation,
            impl_version,
            secret,
        } = msg
        else {
            self.anomalies
                .push(format!("a connection spoke before hello: {msg:?}"));
            let _ = tx.send(OrchMsg::Abort {
                reason: "the first message must be hello".into(),
            });
            return;
        };
        // Authentication before anything else: a connection that fails it touches no slot
        // and is no node's fault; it is logged and dropped, and the run goes on.
        if let Some(why) = self.refuse(index, pid, &secret) {
            tracing::warn!("refused a control connection claiming node {index} (pid {pid}): {why}");
            let _ = tx.send(OrchMsg::Abort {
                reason: "not a node of this run".into(),
            });
            return;
        }
        let n = self.nodes.len() as u32;
        let Some(slot) = self.nodes.get_mut(index as usize) else {
            self.anomalies.push(format!(
                "a node claimed index {index}, but the fleet has {n} nodes"
            ));
            let _ = tx.send(OrchMsg::Abort {
                reason: format!("no node {index} in this run"),
            });
            return;
        };
        if slot.hello {
            self.anomalies
                .push(format!("a second process claimed node index {index}"));
            let _ = tx.send(OrchMsg::Abort {
                reason: format!("node {index} is already connected"),
            });
            return;
        }
        slot.hello = true;
        slot.protocol = protocol;
        slot.last_heard = Some(Instant::now());
        slot.conn = Some(conn);
        slot.pid = slot.pid.or(Some(pid));
        slot.impl_version = Some(format!("{implementation} {impl_version}"));
        slot.tx = Some(tx.clone());
        self.conns.insert(conn, index);
        if !SUPPORTED_PROTOCOLS.contains(&protocol) {
            let _ = tx.send(OrchMsg::Abort {
                reason: format!(
                    "control protocol v{protocol} is not supported; speak v{PROTOCOL_VERSION}"
                ),
            });
            self.fault(
                index,
                NodeStatus::Failed,
                format!("node {index} speaks control protocol v{protocol}; this orchestrator speaks v{PROTOCOL_VERSION}"),
            );
            return;
        }
        let config = Box::new(slot.config.clone());
        // Answered in the node's own version: protocol 2 only adds to protocol 1.
        let _ = tx.send(OrchMsg::Welcome { protocol, config });
    }
}
