//! One node in run.json: how it ended, what the orchestrator saw of it, and its own final
//! result.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use testbed_contract::results::{NodeResult, NodeState, Snapshot, StateChange};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Ok,
    /// Exited or closed its control channel before finishing.
    Crashed,
    /// Did not answer in time.
    Hung,
    /// Reported an error, or broke the protocol.
    Failed,
    /// Stopped on purpose (churn).
    Removed,
    /// Stopped because the run was aborted.
    Aborted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub index: u32,
    pub group: String,
    pub implementation: String,
    pub pid: Option<u32>,
    pub peer_id: Option<String>,
    pub listen_addrs: Vec<String>,
    pub status: NodeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// When the orchestrator noticed the failure (RFC 3339, wall clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<i32>,
    pub last_state: NodeState,
    pub log: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_ms: Option<f64>,
    /// Whether every `wait_mesh` subscribe ended with a mesh; absent when the node does not
    /// say (protocol 1) or did not wait for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meshed: Option<bool>,
    /// State changes as the orchestrator received them (complete even without a result).
    pub timeline: Vec<StateChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<Snapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<NodeResult>,
    /// The node's process as the orchestrator sampled it from `/proc` (local runners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside: Option<super::outside::OutsideSamples>,
    /// The `finish` ack's `info`: counters the result has no field for (the contract's §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_info: Option<FinishInfo>,
}

/// The counters a node's `finish` ack carries beside its result (the contract's §5); each
/// non-zero one means a figure left something out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FinishInfo {
    /// Deliveries with a payload that could not be read (not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed_payloads: Option<u64>,
    /// Latencies clamped to 0 (received before their publish time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamped_latencies: Option<u64>,
    /// Copies the router dropped (a peer's send queue was full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_failed_sends: Option<u64>,
    /// Counters this orchestrator does not know, kept as the node sent them.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl FinishInfo {
    /// The ack's `info` object; None when it is empty or not an object.
    pub fn from_ack(info: &serde_json::Value) -> Option<FinishInfo> {
        let obj = info.as_object().filter(|o| !o.is_empty())?;
        Some(
            serde_json::from_value(info.clone()).unwrap_or_else(|_| FinishInfo {
                // A counter of an unexpected type: keep everything as sent.
                other: obj.clone().into_iter().collect(),
                ..FinishInfo::default()
            }),
        )
    }
}
