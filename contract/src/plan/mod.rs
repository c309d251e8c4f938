//! The YAML test plan, schema v1: serde types only. Loading (parameter substitution, line
//! numbers) and semantic validation live in the orchestrator (`plan_load`, `plan_validate`).
//! Every struct refuses unknown fields, so a typo is an error, never silently ignored.
//! docs/plan-format.md documents every field.

mod assertion;
mod churn;
mod group;
mod matrix;
mod network;
mod telemetry;
mod witness;
mod workload;

pub use assertion::{Assertion, Metric, Op};
pub use churn::{ChurnPhase, Frequencies, Limits, Peak, RemoveMode};
pub use group::{
    GossipsubParams, Group, Implementation, Resources, Security, ValidationMode, Variant,
};
pub use matrix::Matrix;
pub use network::{
    Bandwidth, EventAction, Heal, JitterDistribution, LinkOverride, LinkParams, LinkProfile,
    Network, NetworkEvent, NetworkIssue, Partition, Percent, Region,
};
pub use telemetry::{ClockCorrection, Telemetry, Traces};
pub use witness::Witness;
pub use workload::{Phase, PublishMode, PublishPhase, SettlePhase, SubscribePhase};

use crate::duration::human;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Schema version; must be 1.
    pub version: u32,
    /// Name of the plan; results go to `results/<name>/<run-id>/`.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Seed for every random choice (topology, publishers' jitter, churn, network loss).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The whole run, launch to last result, may take at most this long.
    #[serde(default = "default_timeout", with = "human")]
    pub timeout: Duration,
    /// Named parameters with their defaults; `${name}` anywhere in the plan is replaced by the
    /// value (overridden by `--set name=value` or a matrix cell).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Where the fleet runs.
    #[serde(default)]
    pub runner: RunnerKind,
    pub groups: Vec<Group>,
    #[serde(default)]
    pub topology: Topology,
    pub workload: Vec<Phase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assertions: Vec<Assertion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<Matrix>,
    #[serde(default)]
    pub telemetry: Telemetry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Extra listen-only subscribers that cross-check the fleet's counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<Witness>,
}

fn default_seed() -> u64 {
    1
}

fn default_timeout() -> Duration {
    Duration::from_secs(120)
}

impl Plan {
    /// Total number of nodes launched at the start.
    pub fn node_count(&self) -> u32 {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// The group of each global node index, in plan order.
    pub fn group_of_index(&self) -> Vec<u16> {
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(gi, g)| std::iter::repeat_n(gi as u16, g.count as usize))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunnerKind {
    /// Plain processes on 127.0.0.1.
    #[default]
    Local,
    /// One network namespace per node, links shaped by the user-space shaper.
    Netns,
    /// Pods on a Kubernetes cluster.
    K8s,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TopologyKind {
    /// Every node dials every node with a lower index.
    Full,
    /// Every node dials the first `bootstrap_nodes` nodes.
    Bootstrap,
    /// Every node dials one random earlier node (so the graph is connected) plus
    /// `degree - 1` further random nodes.
    #[default]
    Random,
    /// No dials at the start: peers meet through the churn phase's mock discovery service
    /// when they join topics (as in the reference simulator).
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    #[serde(default)]
    pub kind: TopologyKind,
    /// Outgoing dials per node for `random`.
    #[serde(default = "default_degree")]
    pub degree: u32,
    /// How many nodes serve as bootstrap peers for `bootstrap`.
    #[serde(default = "default_bootstrap")]
    pub bootstrap_nodes: u32,
}

fn default_degree() -> u32 {
    4
}
fn default_bootstrap() -> u32 {
    1
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            kind: TopologyKind::Random,
            degree: default_degree(),
            bootstrap_nodes: default_bootstrap(),
        }
    }
}
