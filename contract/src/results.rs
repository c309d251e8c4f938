//! What nodes report (snapshots, final results) and the fleet summary written to run.json.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's lifecycle. Transitions are reported as they happen; a report draws them as a
/// timeline per node.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Process started, control channel open.
    Starting,
    /// libp2p listens on its real address.
    Listening,
    /// Dials to its topology peers are done.
    Connected,
    /// Subscribed to its topics.
    Subscribed,
    /// Has mesh peers for its topics: ready to exchange messages.
    Ready,
    /// Publishing.
    Running,
    /// Finishing: flushing and building the final result.
    Draining,
    Done,
    Failed,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Starting => "starting",
            NodeState::Listening => "listening",
            NodeState::Connected => "connected",
            NodeState::Subscribed => "subscribed",
            NodeState::Ready => "ready",
            NodeState::Running => "running",
            NodeState::Draining => "draining",
            NodeState::Done => "done",
            NodeState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StateChange {
    pub state: NodeState,
    pub at_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Periodic counters from a running node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub at_ns: u64,
    pub published: u64,
    /// Distinct messages delivered to the application.
    pub received: u64,
    /// Deliveries of an (origin, seq) already seen.
    pub duplicates: u64,
    pub connected_peers: u32,
    pub rss_bytes: u64,
    /// User + system CPU time of the process so far.
    pub cpu_ns: u64,
    /// Per topic: mesh peers and known subscribed peers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topics: BTreeMap<String, TopicPeers>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TopicPeers {
    pub mesh: u32,
    pub subscribed: u32,
}

/// One published message, as the publisher records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Published {
    pub seq: u64,
    pub topic: String,
    pub at_ns: u64,
}

/// Sequence numbers received from one origin, as sorted inclusive ranges `[first, last]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SeenFrom {
    pub origin: u32,
    pub ranges: Vec<[u64; 2]>,
}

/// A time span during which the node was subscribed to a topic (`to_ns` absent: until the end).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub topic: String,
    pub from_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ns: Option<u64>,
}

/// Latency histogram of deliveries whose origin is in one group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OriginLatency {
    pub origin_group: u16,
    /// HDR V2 compressed, base64; values in microseconds ([`crate::histogram`]).
    pub hdr: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// Finished on the orchestrator's `finish`.
    Finished,
    /// Stopped by `abort` or a signal.
    Aborted,
    /// Failed by itself (see `error`).
    Error,
}

/// The final result a node sends before it exits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeResult {
    pub index: u32,
    pub peer_id: String,
    pub exit: ExitReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Delivery latency (receive − publish), per origin group.
    pub latency: Vec<OriginLatency>,
    pub published: Vec<Published>,
    pub seen: Vec<SeenFrom>,
    pub subscriptions: Vec<Subscription>,
    pub received: u64,
    pub duplicates: u64,
    /// Duplicates the pubsub router itself filtered (gossipsub metrics), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_duplicates: Option<u64>,
    /// Bytes through the libp2p transport, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    pub peak_rss_bytes: u64,
    pub final_rss_bytes: u64,
    pub cpu_ns: u64,
    pub timeline: Vec<StateChange>,
    /// Last snapshot taken before the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<Snapshot>,
    /// The slowest delivery to this node among traced (sampled) messages, so a report can
    /// link to its trace. Optional for implementations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest_traced_delivery: Option<TracedDelivery>,
    /// First deliveries per second of receive time, per origin group, so a report can show
    /// when messages arrived (a partition's cut and heal), not only when they were published.
    /// Optional for implementations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub received_over_time: Vec<ReceivedOverTime>,
}

/// First deliveries from one origin group, counted per whole second of wall-clock receive
/// time: `counts[i]` deliveries were received in `[start_unix_s + i, start_unix_s + i + 1)`
/// seconds since the Unix epoch. Seconds without deliveries inside the span count 0.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReceivedOverTime {
    pub origin_group: u16,
    pub start_unix_s: u64,
    pub counts: Vec<u32>,
}

/// One traced delivery: which message, how slow, and the trace that holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TracedDelivery {
    /// W3C trace id, 32 lower-case hex digits.
    pub trace_id: String,
    pub origin: u32,
    pub seq: u64,
    pub latency_us: u64,
}
