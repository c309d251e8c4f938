use super::churn::ChurnPhase;
use crate::duration::{human, human_opt};
use crate::selector::NodeSelector;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One step of the workload; the orchestrator runs them in order, each a barrier: the next
/// starts when every selected node has finished the previous one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Join topics; with `wait_mesh`, the phase ends when each subscriber has mesh peers.
    Subscribe(SubscribePhase),
    /// Leave topics.
    Unsubscribe(SubscribePhase),
    /// Publish `count` messages per selected node.
    Publish(PublishPhase),
    /// Sleep, e.g. `- wait: 2s`.
    Wait(#[serde(with = "human")] Duration),
    /// Wait until every expected delivery has arrived, or `timeout`.
    Settle(SettlePhase),
    /// Random events (peers, topics, friendships) at configured frequencies.
    Churn(ChurnPhase),
}

impl Phase {
    pub fn kind(&self) -> &'static str {
        match self {
            Phase::Subscribe(_) => "subscribe",
            Phase::Unsubscribe(_) => "unsubscribe",
            Phase::Publish(_) => "publish",
            Phase::Wait(_) => "wait",
            Phase::Settle(_) => "settle",
            Phase::Churn(_) => "churn",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubscribePhase {
    pub topics: Vec<String>,
    /// Node indices (default: all).
    #[serde(default = "NodeSelector::all")]
    pub nodes: NodeSelector,
    /// Restrict to these groups (default: every group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default = "yes")]
    pub wait_mesh: bool,
    #[serde(default = "default_mesh_timeout", with = "human")]
    pub mesh_timeout: Duration,
    /// Find peers through the orchestrator's mock discovery service instead of a dial plan:
    /// each subscriber registers for its topics and dials every peer registered before it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub discover: bool,
    /// End the phase only when each subscriber knows every other subscriber of its topics
    /// as subscribed (go-libp2p-pubsub's `MinTopicSize` readiness with every peer).
    #[serde(default, skip_serializing_if = "is_false")]
    pub wait_topic_peers: bool,
}

/// How a publish phase sends its messages.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PublishMode {
    /// Every selected node publishes `count` messages at once (paced by `rate`).
    #[default]
    Concurrent,
    /// `count` messages in total, one at a time, each from a node drawn from the selection
    /// with the plan's seed; the next is published only when every subscriber received the
    /// previous one (the nodes' `delivered` events).
    Lockstep,
}

impl PublishMode {
    fn is_default(&self) -> bool {
        *self == PublishMode::Concurrent
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublishPhase {
    #[serde(default = "default_topic")]
    pub topic: String,
    #[serde(default = "NodeSelector::all")]
    pub nodes: NodeSelector,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Messages per publishing node; in `lockstep` mode, messages in total.
    pub count: u32,
    #[serde(default, skip_serializing_if = "PublishMode::is_default")]
    pub mode: PublishMode,
    /// Lock-step only: how long one message may take to reach every subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "human_opt")]
    pub message_timeout: Option<Duration>,
    /// Messages per second per node; absent means back to back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Message size in bytes, header included (at least 57).
    #[serde(default = "default_size")]
    pub size: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SettlePhase {
    #[serde(default = "default_settle", with = "human")]
    pub timeout: Duration,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn yes() -> bool {
    true
}
fn default_mesh_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_topic() -> String {
    "topic-0".into()
}
fn default_size() -> u32 {
    256
}
fn default_settle() -> Duration {
    Duration::from_secs(10)
}
