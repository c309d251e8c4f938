use crate::duration::human;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A set of identical nodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub id: String,
    /// Number of nodes (at least 1).
    pub count: u32,
    #[serde(default)]
    pub variant: Variant,
    /// Which node program runs the peers of this group.
    #[serde(default)]
    pub implementation: Implementation,
    /// Version of the implementation's pubsub library, where it can be chosen (Go: a
    /// go-libp2p-pubsub version such as `v0.14.2`, or `module/path@version` for a fork).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impl_version: Option<String>,
    #[serde(default)]
    pub gossipsub: GossipsubParams,
    /// The connection security of this group's peers. Peers of different security cannot
    /// connect to each other.
    #[serde(default)]
    pub security: Security,
    /// Kubernetes requests/limits for this group's pods.
    #[serde(default)]
    pub resources: Resources,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    #[default]
    Gossipsub,
    Floodsub,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Gossipsub => "gossipsub",
            Variant::Floodsub => "floodsub",
        }
    }
}

/// The security handshake of a node's libp2p connections.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Noise XX (X25519, ChaChaPoly, SHA-256): what libp2p deployments use.
    #[default]
    Noise,
    /// libp2p's plaintext handshake (`/plaintext/2.0.0`): peer ids are exchanged, nothing
    /// is encrypted. Measures the routers without the cost of encryption.
    Plaintext,
}

impl Security {
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Noise => "noise",
            Security::Plaintext => "plaintext",
        }
    }

    pub fn is_noise(&self) -> bool {
        *self == Security::Noise
    }
}

#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum Implementation {
    #[default]
    Rust,
    Go,
    Js,
}

impl Implementation {
    pub fn as_str(self) -> &'static str {
        match self {
            Implementation::Rust => "rust",
            Implementation::Go => "go",
            Implementation::Js => "js",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ValidationMode {
    /// Messages are signed and signatures checked (libp2p's default).
    #[default]
    Strict,
    Permissive,
    Anonymous,
    None,
}

/// Gossipsub router parameters (ignored by floodsub). Defaults follow the gossipsub v1.1
/// spec and go-libp2p-pubsub (D=6, D_lo=5, D_hi=12, D_lazy=6, 1 s heartbeat, 100 ms initial
/// delay), so Rust, Go and JS peers start from the same settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GossipsubParams {
    pub mesh_n: u32,
    pub mesh_n_low: u32,
    pub mesh_n_high: u32,
    pub mesh_outbound_min: u32,
    pub gossip_lazy: u32,
    pub gossip_factor: f64,
    #[serde(with = "human")]
    pub heartbeat: Duration,
    #[serde(with = "human")]
    pub heartbeat_initial_delay: Duration,
    pub history_length: u32,
    pub history_gossip: u32,
    #[serde(with = "human")]
    pub fanout_ttl: Duration,
    pub flood_publish: bool,
    pub validation: ValidationMode,
    /// Largest RPC a peer accepts, bytes.
    pub max_transmit_size: u32,
}

impl Default for GossipsubParams {
    fn default() -> Self {
        GossipsubParams {
            mesh_n: 6,
            mesh_n_low: 5,
            mesh_n_high: 12,
            mesh_outbound_min: 2,
            gossip_lazy: 6,
            gossip_factor: 0.25,
            heartbeat: Duration::from_secs(1),
            heartbeat_initial_delay: Duration::from_millis(100),
            history_length: 5,
            history_gossip: 3,
            fanout_ttl: Duration::from_secs(60),
            flood_publish: true,
            validation: ValidationMode::Strict,
            max_transmit_size: 1 << 20,
        }
    }
}

/// Kubernetes resource requests and limits (quantities as Kubernetes writes them).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
}
