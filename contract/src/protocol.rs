//! The control channel: newline-delimited JSON objects, one message per line, each tagged by
//! `"type"`. The node opens the connection (TCP or a Unix socket, see
//! [`crate::env::CONTROL_ADDR`]) and speaks first. docs/node-contract.md is the normative
//! description for implementers in other languages.
//!
//! ```text
//! node                                   orchestrator
//!  hello{protocol,index,pid,…}  ───────▶
//!                               ◀─────── welcome{config}  (or abort{reason})
//!  listening{peer_id,addrs}     ───────▶
//!  state{…}, snapshot{…}        ───────▶  (any time)
//!                               ◀─────── command{id, cmd}
//!  ack{id, ok, …}               ───────▶
//!  signal{barrier,target}       ───────▶
//!                               ◀─────── released{barrier,count}
//!                               ◀─────── command{id, finish}
//!  result{…}, then close        ───────▶
//! ```

use crate::plan::{GossipsubParams, Variant};
use crate::results::{NodeResult, NodeState, Snapshot};
use serde::{Deserialize, Serialize};

/// Messages from a node to the orchestrator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeMsg {
    /// First message on the connection.
    Hello {
        protocol: u32,
        index: u32,
        pid: u32,
        /// `rust`, `go`, `js`, …
        implementation: String,
        /// Version of the implementation's libp2p/pubsub libraries, free text.
        impl_version: String,
    },
    /// The libp2p swarm listens; the addresses are real (OS-assigned port resolved).
    Listening {
        peer_id: String,
        listen_addrs: Vec<String>,
        /// `HOST:PORT` where the node serves its libp2p metrics (Prometheus text at
        /// `/metrics`), when `node_metrics` is on. Optional for implementations.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metrics_addr: Option<String>,
    },
    /// A lifecycle transition, timestamped by the node (ns since the Unix epoch).
    State {
        state: NodeState,
        at_ns: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A command is done (or failed, with `error`).
    Ack {
        id: u64,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Command-specific facts, e.g. `{"mesh_ms": 412}` after a subscribe.
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        info: serde_json::Value,
    },
    /// Periodic counters (every `snapshot_interval_ms`).
    Snapshot(Snapshot),
    /// Sync service: signal entry into `barrier`; released when `target` nodes signalled.
    Signal { barrier: String, target: u32 },
    /// The final result; the node closes the connection after it and exits.
    Result(Box<NodeResult>),
}

/// Messages from the orchestrator to a node. Nodes ignore fields they do not know, so the
/// orchestrator can add optional fields without breaking older nodes; the orchestrator, in
/// turn, refuses unknown fields from nodes so drift is named instead of silently lost.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrchMsg {
    Welcome {
        protocol: u32,
        config: Box<NodeConfig>,
    },
    Command {
        id: u64,
        cmd: Command,
    },
    Released {
        barrier: String,
        count: u32,
    },
    /// Stop at once (the run is over or failed); send a result if possible, then exit.
    Abort {
        reason: String,
    },
}

/// What the orchestrator asks a node to do. Each is acknowledged with `ack{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Dial these peers; ack when every dial succeeded or failed (failures listed in error).
    Connect {
        peers: Vec<PeerAddr>,
    },
    /// Close connections to these peers.
    Disconnect {
        peers: Vec<PeerAddr>,
    },
    /// Subscribe; with `wait_mesh`, ack only when each topic has mesh peers (gossipsub:
    /// `min(mesh_n_low, subscribed peers)` and at least one; floodsub: a subscribed peer),
    /// or fail after `mesh_timeout_ms`. A topic no connected peer subscribes to does not wait.
    Subscribe {
        topics: Vec<String>,
        wait_mesh: bool,
        mesh_timeout_ms: u64,
    },
    Unsubscribe {
        topics: Vec<String>,
    },
    /// Publish `count` messages of `size` bytes (payload layout v1), at `rate` per second
    /// (absent: back to back). Before the first one, wait up to `peer_timeout_ms` until a
    /// peer subscribed to the topic is known. Ack when all are published.
    Publish {
        topic: String,
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<f64>,
        size: u32,
        peer_timeout_ms: u64,
    },
    /// Send a snapshot now (ack follows the snapshot).
    Report,
    /// Drain: stop publishing, send the final result, close, exit 0.
    Finish,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerAddr {
    pub index: u32,
    pub peer_id: String,
    /// Multiaddr without the `/p2p/` suffix, e.g. `/ip4/127.0.0.1/tcp/40123`.
    pub addr: String,
}

/// Everything a node needs to know about its part in the run, sent in `welcome`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeConfig {
    pub run_id: String,
    pub index: u32,
    pub group: String,
    pub variant: Variant,
    pub gossipsub: GossipsubParams,
    /// Per-node seed derived from the plan's seed.
    pub seed: u64,
    pub snapshot_interval_ms: u64,
    /// Group index of each node index: latencies are kept per origin group so the report can
    /// show group-to-group (region, implementation) figures. Unknown origins count as group
    /// `u16::MAX`.
    pub origin_groups: Vec<u16>,
    /// Tracing, when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingConfig>,
    /// Serve this node's libp2p/gossipsub metrics over HTTP (Prometheus text) and announce
    /// the address in `listening.metrics_addr`. Optional for implementations.
    #[serde(default, skip_serializing_if = "is_false")]
    pub node_metrics: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How a node exports traces (docs/observability.md, docs/node-contract.md).
///
/// Wire form: `{"otlp_endpoint":"http://127.0.0.1:4318","sample_ratio":0.01,
/// "service_name":"node-0007"}`. The node sends OTLP/HTTP (protobuf) to
/// `otlp_endpoint` + `/v1/traces`, with resource attributes `service.name`,
/// `testbed.run_id`, `testbed.node.index`, `testbed.node.group`,
/// `testbed.node.implementation`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TracingConfig {
    /// OTLP/HTTP endpoint base, e.g. `http://127.0.0.1:4318` (`/v1/traces` is appended), or
    /// `unix:/path`: OTLP/HTTP over that Unix socket (nodes in network namespaces).
    pub otlp_endpoint: String,
    /// Fraction of published messages whose propagation is traced (0..=1): see [`sampled`].
    pub sample_ratio: f64,
    /// The node's `service.name`; empty: `node-` and the index in four digits.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
}

impl TracingConfig {
    /// `service.name` of node `index`.
    pub fn service_name_of(&self, index: u32) -> String {
        if self.service_name.is_empty() {
            node_service_name(index)
        } else {
            self.service_name.clone()
        }
    }
}

/// The default `service.name` of node `index`: `node-0007`.
pub fn node_service_name(index: u32) -> String {
    format!("node-{index:04}")
}

/// Whether node `index`'s message `seq` is traced at sample ratio `r`: when
/// `ceil(seq·r + φ) ≠ ceil((seq+1)·r + φ)`, with the node's phase `φ = frac(index·0.618…)`.
/// Each node traces exactly a fraction `r` of its messages, evenly spaced; the phases spread
/// the traced messages over the nodes, so that a fleet of short publishers is sampled at `r`
/// too (not every node's first message).
pub fn sampled(index: u32, seq: u64, r: f64) -> bool {
    if r >= 1.0 {
        return true;
    }
    if r.is_nan() || r <= 0.0 {
        return false;
    }
    let phase = (f64::from(index) * 0.618_033_988_749_894_9).fract();
    (seq as f64 * r + phase).ceil() != ((seq + 1) as f64 * r + phase).ceil()
}

/// The trace id of node `index`'s lifecycle trace in run `run_id`: derived, not random, so
/// the orchestrator can name it (report.md) even for a node that never reported. FNV-1a over
/// `run_id`, a NUL and the index (big-endian), widened to 128 bits with two offsets.
pub fn lifecycle_trace_id(run_id: &str, index: u32) -> [u8; 16] {
    let fnv = |basis: u64| {
        let mut h = basis;
        for b in run_id.bytes().chain([0]).chain(index.to_be_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    let hi = fnv(0xcbf2_9ce4_8422_2325);
    let lo = fnv(0x8422_2325_cbf2_9ce4) | 1; // never all zero (an invalid trace id)
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&hi.to_be_bytes());
    id[8..].copy_from_slice(&lo.to_be_bytes());
    id
}

/// Lower-case hex, as trace ids are written in Jaeger and OTLP/JSON.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Encodes one message as a line (with the trailing newline).
pub fn encode_line<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(msg).expect("protocol types always serialize");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_stable() {
        let m = NodeMsg::Hello {
            protocol: 1,
            index: 3,
            pid: 99,
            implementation: "rust".into(),
            impl_version: "libp2p 0.57".into(),
        };
        let line = String::from_utf8(encode_line(&m)).unwrap();
        assert_eq!(
            line,
            "{\"type\":\"hello\",\"protocol\":1,\"index\":3,\"pid\":99,\"implementation\":\"rust\",\"impl_version\":\"libp2p 0.57\"}\n"
        );
        let c = OrchMsg::Command {
            id: 5,
            cmd: Command::Subscribe {
                topics: vec!["t".into()],
                wait_mesh: true,
                mesh_timeout_ms: 1000,
            },
        };
        let back: OrchMsg = serde_json::from_slice(&encode_line(&c)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn sampling_is_evenly_spaced() {
        let picked: Vec<u64> = (0..300).filter(|&s| sampled(0, s, 0.01)).collect();
        assert_eq!(picked, vec![0, 100, 200]);
        let picked: Vec<u64> = (0..300).filter(|&s| sampled(1, s, 0.01)).collect();
        assert_eq!(picked.len(), 3);
        assert!(picked.windows(2).all(|w| w[1] - w[0] == 100), "{picked:?}");
        assert!((0..50).all(|s| sampled(3, s, 1.0)));
        assert!(!(0..50).any(|s| sampled(3, s, 0.0)));
        assert_eq!((0..1000).filter(|&s| sampled(5, s, 0.25)).count(), 250);
        // 100 nodes publishing 10 messages each at 1 %: about 10 messages, not one per node.
        let fleet = (0..100u32)
            .flat_map(|i| (0..10).filter(move |&s| sampled(i, s, 0.01)))
            .count();
        assert!((8..=12).contains(&fleet), "{fleet}");
    }

    #[test]
    fn lifecycle_trace_ids_differ_per_node_and_run() {
        let a = lifecycle_trace_id("r1", 0);
        assert_eq!(a, lifecycle_trace_id("r1", 0));
        assert_ne!(a, lifecycle_trace_id("r1", 1));
        assert_ne!(a, lifecycle_trace_id("r2", 0));
        assert_eq!(hex(&a).len(), 32);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = r#"{"type":"signal","barrier":"x","target":2,"extra":1}"#;
        assert!(serde_json::from_str::<NodeMsg>(bad).is_err());
    }
}
