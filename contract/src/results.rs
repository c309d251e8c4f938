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
    /// Send time: when the message was handed to the router.
    pub at_ns: u64,
    /// When the rate schedule said the message was due (paced publishing, protocol 2);
    /// absent: due = send (back to back, or a protocol 1 node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_ns: Option<u64>,
}

/// The outcome of a `subscribe` with `wait_mesh`: whether every topic's mesh reached its
/// target. The same object is the subscribe ack's `info` (protocol 2) and the result's `mesh`.
///
/// Wire form: `{"mesh_ms": 412, "meshed": true, "topics": {"t": {"mesh": 5, "subscribed": 8,
/// "target": 5}}}`; `mesh_ms` is `null` unless `meshed`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MeshOutcome {
    /// Time from the subscribe until every topic's mesh last reached its target; `None`
    /// (JSON `null`) when the node went ahead without a mesh.
    #[serde(default)]
    pub mesh_ms: Option<u64>,
    /// Every topic's mesh reached its target, and every target is at least 1.
    pub meshed: bool,
    pub topics: BTreeMap<String, TopicMesh>,
}

/// One topic's mesh at the end of a mesh wait.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TopicMesh {
    pub mesh: u32,
    pub subscribed: u32,
    /// `min(mesh_n_low, subscribed)` for gossipsub, `min(1, subscribed)` for floodsub: the
    /// mesh is complete when `mesh >= target` and `target >= 1`.
    pub target: u32,
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
    /// Delivery latency (receive − due), per origin group (protocol 1 nodes: receive − send).
    pub latency: Vec<OriginLatency>,
    /// Receive − send, per origin group: latency without the publisher's lag (protocol 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_since_send: Vec<OriginLatency>,
    /// The publisher's lag, send − due, µs, one value per published message (0 when
    /// publishing back to back): HDR V2 compressed, base64. Absent when nothing was published
    /// (or from a protocol 1 node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_lag: Option<String>,
    pub published: Vec<Published>,
    pub seen: Vec<SeenFrom>,
    pub subscriptions: Vec<Subscription>,
    /// The last `subscribe` with `wait_mesh`: its outcome (protocol 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<MeshOutcome>,
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
    /// How late the node's event loop ran its own periodic probe timer, so a report can tell
    /// a stalled or starved node from a slow protocol. Optional for implementations: absent,
    /// the node's loop lag is "not measured".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_lag: Option<LoopLag>,
    /// Which peer each first delivery came from, so the orchestrator can rebuild every
    /// message's delivery tree and count hops. Optional for implementations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_hops: Option<FirstHops>,
}

/// The peer each first delivery came from (the router's propagation source: the peer that
/// forwarded the copy, not the message's author).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FirstHops {
    /// Peer ids (base58) the first copies came from, each once; `deliveries` index it.
    pub peers: Vec<String>,
    /// `[origin, seq, peer]` per first delivery, in the order received: `peer` is an index
    /// into `peers`.
    pub deliveries: Vec<[u64; 3]>,
    /// First deliveries left out because the list was full (the node keeps a bounded list).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The node's event-loop lag: a timer due every `interval_ms`, checked by the loop itself;
/// each tick's lateness is when the loop got to it minus when it was due. A stopped,
/// CPU-starved or blocked loop shows as late ticks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LoopLag {
    /// The probe's period, ms.
    pub interval_ms: u32,
    /// Lateness of every tick from the welcome to the result, µs: HDR V2 compressed, base64
    /// ([`crate::histogram`]).
    pub hdr: String,
    /// The first second of `max_us`, in seconds since the Unix epoch (wall clock).
    pub start_unix_s: u64,
    /// The largest lateness, µs, of the ticks due in each whole second of wall-clock time:
    /// `max_us[i]` is over `[start_unix_s + i, start_unix_s + i + 1)`; 0 for a second without
    /// a tick. Lets the orchestrator find the largest lag inside its measurement window.
    pub max_us: Vec<u32>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_outcome_wire_form() {
        let met = MeshOutcome {
            mesh_ms: Some(412),
            meshed: true,
            topics: BTreeMap::from([(
                "t".to_string(),
                TopicMesh {
                    mesh: 5,
                    subscribed: 8,
                    target: 5,
                },
            )]),
        };
        assert_eq!(
            serde_json::to_string(&met).unwrap(),
            r#"{"mesh_ms":412,"meshed":true,"topics":{"t":{"mesh":5,"subscribed":8,"target":5}}}"#
        );
        // Without a mesh, `mesh_ms` is an explicit null.
        let lonely = MeshOutcome {
            mesh_ms: None,
            meshed: false,
            topics: BTreeMap::from([("t".to_string(), TopicMesh::default())]),
        };
        let line = serde_json::to_string(&lonely).unwrap();
        assert_eq!(
            line,
            r#"{"mesh_ms":null,"meshed":false,"topics":{"t":{"mesh":0,"subscribed":0,"target":0}}}"#
        );
        assert_eq!(serde_json::from_str::<MeshOutcome>(&line).unwrap(), lonely);
    }

    /// A protocol 1 node's result (none of the protocol 2 fields) still parses, and a v2
    /// result carries them.
    #[test]
    fn v1_results_parse_and_v2_fields_round_trip() {
        let v1 = r#"{"index":1,"peer_id":"p","exit":"finished","latency":[],
            "published":[{"seq":0,"topic":"t","at_ns":5}],"seen":[],"subscriptions":[],
            "received":0,"duplicates":0,"peak_rss_bytes":1,"final_rss_bytes":1,"cpu_ns":1,
            "timeline":[]}"#;
        let r: NodeResult = serde_json::from_str(v1).unwrap();
        assert!(r.latency_since_send.is_empty() && r.publish_lag.is_none() && r.mesh.is_none());
        assert!(
            r.loop_lag.is_none(),
            "a node that does not measure it sends none"
        );
        assert_eq!(r.published[0].due_ns, None);

        let mut v2 = r.clone();
        v2.published[0].due_ns = Some(4);
        v2.publish_lag = Some("HISTFAAAAA==".into());
        v2.latency_since_send = vec![OriginLatency {
            origin_group: 0,
            hdr: "x".into(),
        }];
        v2.mesh = Some(MeshOutcome::default());
        v2.loop_lag = Some(LoopLag {
            interval_ms: 100,
            hdr: "HISTFAAAAA==".into(),
            start_unix_s: 1_760_000_000,
            max_us: vec![120, 0, 300_000],
        });
        v2.first_hops = Some(FirstHops {
            peers: vec!["12D3KooWx".into()],
            deliveries: vec![[4, 17, 0]],
            dropped: 0,
        });
        let text = serde_json::to_string(&v2).unwrap();
        assert!(text.contains(r#""due_ns":4"#), "{text}");
        assert!(
            text.contains(r#""first_hops":{"peers":["12D3KooWx"],"deliveries":[[4,17,0]]}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<NodeResult>(&text).unwrap(), v2);
        // Unset, the new fields are not sent at all.
        let text = serde_json::to_string(&r).unwrap();
        for key in [
            "due_ns",
            "publish_lag",
            "latency_since_send",
            "\"mesh\"",
            "loop_lag",
            "first_hops",
        ] {
            assert!(!text.contains(key), "{key} in {text}");
        }
    }
}
