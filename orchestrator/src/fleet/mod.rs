//! The orchestrator's view of the fleet: one [`NodeSlot`] per node, fed by control-channel
//! events and process exits. Every wait in a run goes through [`Fleet::wait_until`], so a
//! crash, a protocol violation, Ctrl-C or the plan's deadline is noticed wherever the run is.

mod slot;

pub use slot::NodeSlot;

use crate::control::barrier::Barriers;
use crate::control::{ConnId, ControlEvent};
use crate::record::NodeStatus;
use crate::runner::NodeExit;
use std::collections::{HashMap, HashSet};
use testbed_contract::protocol::{Command, NodeMsg, OrchMsg};
use testbed_contract::results::{ExitReason, NodeState, StateChange};
use testbed_contract::{PROTOCOL_VERSION, SUPPORTED_PROTOCOLS};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

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
    /// Commands whose failure is an outcome to record, not a node fault (churn).
    tolerated: HashSet<u64>,
    next_cmd: u64,
    barriers: Barriers,
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
    /// Told of every node process as it starts, to sample it from `/proc`.
    pub sampler: Option<crate::sampler::SamplerHandle>,
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
            tolerated: HashSet::new(),
            next_cmd: 1,
            barriers: Barriers::default(),
            deadline,
            activity: "launch".into(),
            anomalies: Vec::new(),
            finishing: false,
            live: None,
            sampler: None,
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
        if let (Some(s), Some(pid)) = (&self.sampler, pid) {
            s.watch(index, pid);
        }
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
        self.nodes.iter().any(|n| n.fault.is_some())
    }

    pub fn alive(&self) -> impl Iterator<Item = &NodeSlot> {
        self.nodes.iter().filter(|n| n.alive())
    }

    /// Sends a command; returns its id, or None when the node cannot be reached.
    pub fn command(&mut self, index: u32, cmd: Command) -> Option<u64> {
        let id = self.next_cmd;
        self.next_cmd += 1;
        let slot = self.nodes.get(index as usize)?;
        if !slot.alive() {
            return None;
        }
        slot.tx.as_ref()?.send(OrchMsg::Command { id, cmd }).ok()?;
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

    pub fn ack(&self, id: u64) -> Option<&AckInfo> {
        self.acks.get(&id)
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
            if !self.finishing && self.has_faults() {
                return Err(Stop::Fault);
            }
            if *self.interrupt.borrow() {
                return Err(Stop::Interrupted);
            }
            let limit = until.min(self.deadline);
            tokio::select! {
                ev = self.control.recv() => match ev {
                    Some(ev) => self.on_control(ev),
                    None => return Err(Stop::Fault),
                },
                Some(exit) = self.exits.recv() => self.on_exit(exit),
                _ = self.interrupt.changed() => {}
                _ = tokio::time::sleep_until(limit) => {
                    if cond(self) {
                        return Ok(true);
                    }
                    return if limit >= self.deadline { Err(Stop::Timeout) } else { Ok(false) };
                }
            }
        }
    }

    /// Waits for acks of `ids`; nodes that have not answered by `until` are marked hung.
    pub async fn await_acks(
        &mut self,
        ids: &[u64],
        until: Instant,
        what: &str,
    ) -> Result<(), Stop> {
        let done = |f: &Fleet| {
            ids.iter()
                .all(|id| f.acks.contains_key(id) || f.owner_gone(*id))
        };
        match self.wait_until(until, done).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.mark_hung(ids, what);
                Err(Stop::Fault)
            }
            Err(Stop::Timeout) => {
                self.mark_hung(ids, what);
                Err(Stop::Timeout)
            }
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
        if let Some(live) = &self.live {
            live.on_node(slot.update());
        }
    }

    fn on_exit(&mut self, exit: NodeExit) {
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
            // Protocol 2 messages nothing asks for yet (report_deliveries is off, no pings).
            NodeMsg::Delivered { .. } | NodeMsg::Pong { .. } => {}
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
            ..
        } = msg
        else {
            self.anomalies
                .push(format!("a connection spoke before hello: {msg:?}"));
            let _ = tx.send(OrchMsg::Abort {
                reason: "the first message must be hello".into(),
            });
            return;
        };
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
