//! The control channel: newline-delimited JSON objects, one message per line, each tagged by
//! `"type"`. The node opens the connection (TCP or a Unix socket, see
//! [`crate::env::CONTROL_ADDR`]) and speaks first. docs/node-contract.md is the normative
//! description for implementers in other languages.
//!
//! ```text
//! node                                   orchestrator
//!  hello{protocol,index,pid,…,secret}  ───────▶
//!                               ◀─────── welcome{protocol, config}  (or abort{reason})
//!  listening{peer_id,addrs}     ───────▶
//!  state{…}, snapshot{…}        ───────▶  (any time)
//!                               ◀─────── command{id, cmd}
//!  ack{id, ok, …}               ───────▶
//!                               ◀─────── command{id, clock{offset_ns}} (optional, Rust)
//!                               ◀─────── ping{id}             (protocol 2, any time)
//!  pong{id, at_ns}              ───────▶
//!  delivered{origin,seq,at_ns}  ───────▶  (protocol 2, when `report_deliveries`)
//!  signal{barrier,target}       ───────▶
//!                               ◀─────── released{barrier,count}
//!                               ◀─────── command{id, finish}
//!  result{…}, then close        ───────▶
//! ```

use crate::plan::{GossipsubParams, Security, Variant};
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
        /// The run secret from [`crate::env::RUN_SECRET`] (protocol 2); omitted when the
        /// environment has none.
        #[serde(default, skip_serializing_if = "Secret::is_empty")]
        secret: Secret,
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
    /// The first delivery of message `(origin, seq)` to this node, received at `at_ns` (wall
    /// clock). Sent at once, only when the welcome's `report_deliveries` is on (protocol 2).
    Delivered { origin: u32, seq: u64, at_ns: u64 },
    /// The answer to `ping{id}`, sent at once: `at_ns` is the node's wall clock when the
    /// ping was read (protocol 2).
    Pong { id: u64, at_ns: u64 },
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
    /// Answer at once with `pong{id, at_ns}` (protocol 2): clock offset and liveness.
    Ping {
        id: u64,
    },
}

/// The run secret as it travels in `hello`. Its `Debug` form never shows the value, so a
/// logged message cannot leak it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value, for comparing with the run's secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the values differ.
    pub fn matches(&self, expected: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), expected.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(none)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
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
    /// Publish `count` messages of `size` bytes (payload layout 2), at `rate` per second
    /// (absent: back to back); message k is due at `start + k / rate`. Before the first one, wait up to `peer_timeout_ms` until a
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
    /// Optional (implementations may refuse it; the orchestrator sends it only to those that
    /// take it): from now on subtract `offset_ns` from every wall-clock time the node stamps
    /// or compares (publish, due, receive, state and pong times), so they are on the
    /// orchestrator's clock. The orchestrator measured the offset with pings; a new command
    /// replaces the previous offset.
    Clock {
        offset_ns: i64,
    },
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
    /// Connection security (protocol 2); noise, the default, is not sent, so protocol 1
    /// nodes see no change.
    #[serde(default, skip_serializing_if = "Security::is_noise")]
    pub security: Security,
    /// Send `delivered{origin, seq, at_ns}` for every first delivery, as it happens
    /// (protocol 2; lock-step publishing).
    #[serde(default, skip_serializing_if = "is_false")]
    pub report_deliveries: bool,
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
        // A protocol 1 hello (no secret) keeps its exact form and still parses.
        let m = NodeMsg::Hello {
            protocol: 1,
            index: 3,
            pid: 99,
            implementation: "rust".into(),
            impl_version: "libp2p 0.57".into(),
            secret: Secret::default(),
        };
        let line = String::from_utf8(encode_line(&m)).unwrap();
        assert_eq!(
            line,
            "{\"type\":\"hello\",\"protocol\":1,\"index\":3,\"pid\":99,\"implementation\":\"rust\",\"impl_version\":\"libp2p 0.57\"}\n"
        );
        assert_eq!(serde_json::from_str::<NodeMsg>(&line).unwrap(), m);
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
    fn hello_carries_the_secret_and_never_shows_it() {
        let m = NodeMsg::Hello {
            protocol: 2,
            index: 0,
            pid: 1,
            implementation: "go".into(),
            impl_version: "v".into(),
            secret: Secret::new("s3cr3t"),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"hello","protocol":2,"index":0,"pid":1,"implementation":"go","impl_version":"v","secret":"s3cr3t"}"#
        );
        assert!(!format!("{m:?}").contains("s3cr3t"));
        let NodeMsg::Hello { secret, .. } = m else {
            unreachable!()
        };
        assert!(secret.matches("s3cr3t"));
        assert!(!secret.matches("s3cr3u"));
        assert!(!secret.matches("s3cr3t "));
        assert!(!Secret::default().matches("s3cr3t"));
    }

    #[test]
    fn delivered_pong_and_ping_wire_forms() {
        let d = NodeMsg::Delivered {
            origin: 4,
            seq: 18_446_744_073_709_551_615,
            at_ns: 1_800_000_000_000_000_001,
        };
        let line = serde_json::to_string(&d).unwrap();
        assert_eq!(
            line,
            r#"{"type":"delivered","origin":4,"seq":18446744073709551615,"at_ns":1800000000000000001}"#
        );
        assert_eq!(serde_json::from_str::<NodeMsg>(&line).unwrap(), d);

        let p = NodeMsg::Pong {
            id: 7,
            at_ns: 1_800_000_000_000_000_002,
        };
        let line = serde_json::to_string(&p).unwrap();
        assert_eq!(
            line,
            r#"{"type":"pong","id":7,"at_ns":1800000000000000002}"#
        );
        assert_eq!(serde_json::from_str::<NodeMsg>(&line).unwrap(), p);

        let ping = OrchMsg::Ping { id: 7 };
        let line = serde_json::to_string(&ping).unwrap();
        assert_eq!(line, r#"{"type":"ping","id":7}"#);
        assert_eq!(serde_json::from_str::<OrchMsg>(&line).unwrap(), ping);
    }

    fn config() -> NodeConfig {
        NodeConfig {
            run_id: "r".into(),
            index: 0,
            group: "g".into(),
            variant: Variant::Gossipsub,
            gossipsub: GossipsubParams::default(),
            seed: 1,
            snapshot_interval_ms: 0,
            origin_groups: vec![0],
            tracing: None,
            node_metrics: false,
            security: Security::Noise,
            report_deliveries: false,
        }
    }

    #[test]
    fn new_config_fields_are_sent_only_when_not_default() {
        // Defaults: the welcome a protocol 1 node gets is unchanged.
        let v = serde_json::to_value(config()).unwrap();
        assert!(v.get("security").is_none() && v.get("report_deliveries").is_none());
        let c = NodeConfig {
            security: Security::Plaintext,
            report_deliveries: true,
            ..config()
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["security"], "plaintext");
        assert_eq!(v["report_deliveries"], true);
        assert_eq!(serde_json::from_value::<NodeConfig>(v).unwrap(), c);
        // An unknown security is refused by name.
        let mut v = serde_json::to_value(config()).unwrap();
        v["security"] = "tls".into();
        let e = serde_json::from_value::<NodeConfig>(v).unwrap_err();
        assert!(e.to_string().contains("tls"), "{e}");
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
