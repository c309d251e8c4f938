//! The `churn` workload phase: a simulated pubsub network in which peers, topics and
//! friendships come and go, on real node processes (docs/simulator.md). Modelled on the
//! reference simulator (go-libp2p-pubsub-benchmark `cmd/sim`): every heartbeat, each event
//! kind whose relative delay has passed is tried once; its defaults are the reference's.

use crate::duration::human;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnPhase {
    /// How long the simulation runs (from its first heartbeat's start to its end).
    #[serde(with = "human")]
    pub duration: Duration,
    /// The simulator's clock: each heartbeat, every event kind is considered once.
    #[serde(with = "human")]
    pub heartbeat: Duration,
    /// Each event kind's delay (frequency × heartbeat) is multiplied by a random factor in
    /// `[1 − drift, 1 + drift]` every heartbeat (the reference's Freq Up/Down: 0.25).
    pub drift: f64,
    /// Relative delay per event kind, in heartbeats: smaller happens more often; 0 never.
    pub frequencies: Frequencies,
    pub limits: Limits,
    /// Topics created at the start, each joined by `initial_peers_per_topic` random peers.
    /// The initial peers are the plan's `groups`.
    pub initial_topics: u32,
    pub initial_peers_per_topic: u32,
    /// `peak_random_topic`: this many peers join one topic, and leave it after `duration`.
    pub peak: Peak,
    /// Mock discovery: a peer that joins a topic is told to connect to up to this many peers
    /// of the topic (picked at random by the orchestrator's discovery service).
    pub discovery_peers: u32,
    /// Bytes per message of `message_random_topic` (header included, at least 57).
    pub message_size: u32,
    /// A message is expected at a receiver only when the receiver was subscribed to the
    /// topic for the whole window `[publish, publish + delivery_window]` (and took part until
    /// its end); everything else is neither a hit nor a miss.
    #[serde(with = "human")]
    pub delivery_window: Duration,
    /// How `remove_peer` stops a process.
    pub remove_mode: RemoveMode,
    /// A publisher waits at most this long for a subscribed peer before its message is
    /// given up (the event then fails; nothing was published).
    #[serde(with = "human")]
    pub publish_peer_timeout: Duration,
    /// Print the live line on stdout this often; `0s`: never.
    #[serde(with = "human")]
    pub live_every: Duration,
    /// The group (id) whose settings new peers get; default: the first group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_peers_group: Option<String>,
}

impl Default for ChurnPhase {
    fn default() -> Self {
        ChurnPhase {
            duration: Duration::from_secs(600),
            heartbeat: Duration::from_secs(1),
            drift: 0.25,
            frequencies: Frequencies::default(),
            limits: Limits::default(),
            initial_topics: 10,
            initial_peers_per_topic: 5,
            peak: Peak::default(),
            discovery_peers: 3,
            message_size: 256,
            delivery_window: Duration::from_secs(5),
            remove_mode: RemoveMode::Graceful,
            publish_peer_timeout: Duration::from_secs(2),
            live_every: Duration::from_secs(10),
            new_peers_group: None,
        }
    }
}

/// Relative delays in heartbeats (the reference's `Freq{D}`); 0 turns an event off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Frequencies {
    /// Launch a new peer process (while below `max_peers`).
    pub add_peer: u32,
    /// Stop a random peer (while above `min_peers`), as `remove_mode` says.
    pub remove_peer: u32,
    /// Create a topic joined by `initial_peers_per_topic` random peers.
    pub add_topic: u32,
    /// Every member of a random topic leaves it.
    pub remove_topic: u32,
    /// A random peer joins a random topic.
    pub join_random_topic: u32,
    /// A random peer joins a topic of one of its friends.
    pub join_friends_topic: u32,
    /// A random peer leaves one of its topics (not in the reference: 0).
    pub leave_random_topic: u32,
    /// Two random peers become friends: they connect, and the second joins a topic of the
    /// first.
    pub add_friend: u32,
    /// A random peer publishes one message to one of its topics that has another member.
    pub message_random_topic: u32,
    /// `peak.peers` random peers join a random topic for `peak.duration`.
    pub peak_random_topic: u32,
    /// Friendships whose peers share no topic end (the reference's GC).
    pub forget_friends: u32,
}

impl Default for Frequencies {
    fn default() -> Self {
        Frequencies {
            add_peer: 3,
            remove_peer: 50,
            add_topic: 3,
            remove_topic: 80,
            join_random_topic: 2,
            join_friends_topic: 4,
            leave_random_topic: 0,
            add_friend: 2,
            message_random_topic: 3,
            peak_random_topic: 10,
            forget_friends: 100,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// `add_peer` only below this many peers.
    pub max_peers: u32,
    /// `remove_peer` only above this many peers.
    pub min_peers: u32,
    pub max_topics: u32,
    pub max_topics_per_peer: u32,
    pub max_peers_per_topic: u32,
    pub max_friends_per_peer: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_peers: 30,
            min_peers: 10,
            max_topics: 20,
            max_topics_per_peer: 15,
            max_peers_per_topic: 10,
            max_friends_per_peer: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Peak {
    pub peers: u32,
    #[serde(with = "human")]
    pub duration: Duration,
}

impl Default for Peak {
    fn default() -> Self {
        Peak {
            peers: 5,
            duration: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RemoveMode {
    /// SIGTERM: the node sends its result (seen-set, subscriptions) and exits.
    #[default]
    Graceful,
    /// SIGKILL: no result; the orchestrator's own record stands in for it.
    Kill,
}

impl RemoveMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RemoveMode::Graceful => "graceful",
            RemoveMode::Kill => "kill",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_mapping_is_the_reference_simulator() {
        let c: ChurnPhase = serde_json::from_str("{}").unwrap();
        assert_eq!(c, ChurnPhase::default());
        assert_eq!(c.frequencies.remove_topic, 80);
        assert_eq!(c.limits.max_peers, 30);
    }

    #[test]
    fn typos_are_refused_and_durations_are_human() {
        assert!(serde_json::from_str::<ChurnPhase>(r#"{"hartbeat":"1s"}"#).is_err());
        assert!(serde_json::from_str::<ChurnPhase>(r#"{"frequencies":{"add_peers":1}}"#).is_err());
        let c: ChurnPhase = serde_json::from_str(
            r#"{"duration":"1m","remove_mode":"kill","peak":{"duration":"5s"}}"#,
        )
        .unwrap();
        assert_eq!(c.duration, Duration::from_secs(60));
        assert_eq!(c.remove_mode, RemoveMode::Kill);
        assert_eq!(c.peak.duration, Duration::from_secs(5));
        assert_eq!(c.peak.peers, 5);
        assert!(serde_json::from_str::<ChurnPhase>(r#"{"duration":"60"}"#).is_err());
    }
}
