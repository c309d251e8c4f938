//! One node as the orchestrator sees it: what it was told, what it said, how it ended. Only
//! the fleet's event handling ([`super::Fleet`]) changes a slot; everything else reads it
//! through these methods.

use crate::control::ConnId;
use crate::record::{FinishInfo, NodeRecord, NodeStatus};
use crate::runner::NodeExit;
use crate::telemetry::metrics::NodeUpdate;
use testbed_contract::protocol::{NodeConfig, OrchMsg, PeerAddr};
use testbed_contract::results::{ExitReason, NodeResult, NodeState, Snapshot, StateChange};
use tokio::sync::mpsc;

#[derive(Debug)]
pub struct NodeSlot {
    pub(super) index: u32,
    pub(super) group: String,
    pub(super) implementation: String,
    pub(super) config: NodeConfig,
    pub(super) pid: Option<u32>,
    pub(super) conn: Option<ConnId>,
    pub(super) tx: Option<mpsc::UnboundedSender<OrchMsg>>,
    pub(super) hello: bool,
    /// The control protocol the node said hello in (0 before hello; pings need 2).
    pub(super) protocol: u32,
    pub(super) peer_id: Option<String>,
    pub(super) listen_addrs: Vec<String>,
    pub(super) impl_version: Option<String>,
    pub(super) state: NodeState,
    pub(super) timeline: Vec<StateChange>,
    pub(super) last_snapshot: Option<Snapshot>,
    pub(super) result: Option<NodeResult>,
    pub(super) exit: Option<NodeExit>,
    /// Why the node failed, once it has.
    pub(super) fault: Option<(NodeStatus, String)>,
    /// Stopped on purpose (churn): its exit is not a failure.
    pub(super) removed: bool,
    pub(super) mesh_ms: Option<f64>,
    /// Whether every `wait_mesh` subscribe ended with a mesh (protocol 2's `meshed`); `None`
    /// before one, or when the node does not say (protocol 1).
    pub(super) meshed: Option<bool>,
    /// Where the node serves its own libp2p metrics (`telemetry.node_metrics`).
    pub(super) metrics_addr: Option<String>,
    /// Since when its process has been seen stopped (`/proc` state T), if it is.
    pub(super) stopped_since: Option<tokio::time::Instant>,
    /// When the orchestrator last heard from it (any control message).
    pub(super) last_heard: Option<tokio::time::Instant>,
    /// When its fault was noticed (wall clock).
    pub(super) failed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Every publish command sent to it, as (command id, count): what its result's
    /// `published` is checked against.
    pub(super) publishes: Vec<(u64, u32)>,
}

impl NodeSlot {
    /// A node about to be launched with `config` as its welcome.
    pub fn new(config: NodeConfig, implementation: &str) -> Self {
        NodeSlot {
            index: config.index,
            group: config.group.clone(),
            implementation: implementation.to_string(),
            config,
            pid: None,
            conn: None,
            tx: None,
            hello: false,
            protocol: 0,
            peer_id: None,
            listen_addrs: Vec::new(),
            impl_version: None,
            state: NodeState::Starting,
            timeline: Vec::new(),
            last_snapshot: None,
            result: None,
            exit: None,
            fault: None,
            removed: false,
            mesh_ms: None,
            meshed: None,
            metrics_addr: None,
            stopped_since: None,
            last_heard: None,
            failed_at: None,
            publishes: Vec::new(),
        }
    }

    /// The process id the runner reported, where it started a process.
    pub fn with_pid(mut self, pid: Option<u32>) -> Self {
        self.pid = pid;
        self
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    /// The publish commands it was sent, as (command id, count of messages asked for).
    pub fn publish_commands(&self) -> &[(u64, u32)] {
        &self.publishes
    }

    /// The last lifecycle state the node reported.
    pub fn state(&self) -> NodeState {
        self.state
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn implementation(&self) -> &str {
        &self.implementation
    }

    /// `<implementation> <version>` as its hello said.
    pub fn impl_version(&self) -> Option<&str> {
        self.impl_version.as_deref()
    }

    /// It said hello (it may not listen yet).
    /// The control protocol of its hello (0 before hello); pings need protocol 2.
    pub fn protocol(&self) -> u32 {
        self.protocol
    }

    pub fn hello(&self) -> bool {
        self.hello
    }

    /// It reported its listen addresses.
    pub fn listening(&self) -> bool {
        self.peer_id.is_some()
    }

    pub fn last_snapshot(&self) -> Option<&Snapshot> {
        self.last_snapshot.as_ref()
    }

    pub fn result(&self) -> Option<&NodeResult> {
        self.result.as_ref()
    }

    pub fn exit(&self) -> Option<&NodeExit> {
        self.exit.as_ref()
    }

    pub fn fault(&self) -> Option<&(NodeStatus, String)> {
        self.fault.as_ref()
    }

    pub fn removed(&self) -> bool {
        self.removed
    }

    /// The control channel is open (it closes after the node's last line was read).
    pub fn channel_open(&self) -> bool {
        self.tx.is_some()
    }

    /// Still taking part: connected, not failed, not removed, not exited.
    pub fn alive(&self) -> bool {
        self.fault.is_none() && !self.removed && self.exit.is_none() && self.tx.is_some()
    }

    /// Over, one way or another: removed, failed or exited.
    pub fn ended(&self) -> bool {
        self.removed || self.fault.is_some() || self.exit.is_some()
    }

    /// A dialable address of the node, as it reported it.
    pub fn peer_addr(&self) -> Option<PeerAddr> {
        // A node listening on every interface reports loopback too; peers elsewhere (other
        // namespaces, pods) must dial a routable address.
        let addr = self
            .listen_addrs
            .iter()
            .find(|a| !a.starts_with("/ip4/127.") && !a.starts_with("/ip6/::1/"))
            .or(self.listen_addrs.first())?;
        Some(PeerAddr {
            index: self.index,
            peer_id: self.peer_id.clone()?,
            addr: addr.clone(),
        })
    }

    /// What the live metrics show of it.
    pub fn update(&self) -> NodeUpdate<'_> {
        NodeUpdate {
            index: self.index,
            group: &self.group,
            state: self.state,
            failed: self.fault.is_some(),
            metrics_addr: self.metrics_addr.as_deref(),
            snapshot: self
                .result
                .as_ref()
                .and_then(|r| r.last_snapshot.as_ref())
                .or(self.last_snapshot.as_ref()),
        }
    }

    /// The node's record in run.json; `log` is its log file relative to the results folder.
    pub fn into_record(self, log: String, finish_info: Option<FinishInfo>) -> NodeRecord {
        let (status, failure) = match self.fault {
            Some((st, why)) => (st, Some(why)),
            None if self.removed => (NodeStatus::Removed, None),
            None if self
                .result
                .as_ref()
                .is_some_and(|r| r.exit == ExitReason::Finished) =>
            {
                (NodeStatus::Ok, None)
            }
            None => (NodeStatus::Aborted, None),
        };
        NodeRecord {
            index: self.index,
            group: self.group,
            implementation: self.implementation,
            pid: self.pid,
            peer_id: self.peer_id,
            listen_addrs: self.listen_addrs,
            status,
            failure,
            failed_at: self.failed_at.map(|t| t.to_rfc3339()),
            exit_code: self.exit.and_then(|e| e.code),
            exit_signal: self.exit.and_then(|e| e.signal),
            last_state: self.state,
            log,
            mesh_ms: self.mesh_ms,
            meshed: self.meshed,
            timeline: self.timeline,
            last_snapshot: self.last_snapshot,
            result: self.result,
            finish_info,
            outside: None,
        }
    }
}
