//! One pubsub API over gossipsub and floodsub: subscribe, publish, and who is where.
//!
//! Which remote peers subscribe to which topic is tracked here from the routers' events for
//! both variants: floodsub keeps that knowledge private, and one source of truth keeps the
//! two variants' "known subscribed peers" comparable.

use crate::swarm::{Behaviour, BehaviourEvent};
use libp2p::gossipsub::{self, IdentTopic, PublishError};
use libp2p::{PeerId, Swarm, floodsub};
use std::collections::{HashMap, HashSet};
use testbed_contract::plan::Variant;

/// Floodsub frames are capped at 2048 bytes (libp2p-floodsub's codec); this much of a frame
/// is not payload (author, random sequence number, protobuf framing) besides the topic.
const FLOODSUB_MAX_FRAME: usize = 2048;
const FLOODSUB_OVERHEAD: usize = 96;
/// Room left in gossipsub's max_transmit_size for what an RPC carries besides the payload
/// (author, sequence number, signature, protobuf framing; the topic name comes on top).
const GOSSIPSUB_OVERHEAD: usize = 256;
/// libp2p-gossipsub 0.50.1 checks max_transmit_size against its whole read buffer, which can
/// hold up to one 8 KiB read of the *next* frame: an RPC within 8 KiB of the limit followed by
/// another one kills the inbound stream and loses messages. Keep clear of that.
const GOSSIPSUB_READ_SLACK: usize = 8 * 1024;

pub struct Pubsub {
    pub swarm: Swarm<Behaviour>,
    variant: Variant,
    /// Topic → remote peers known to subscribe to it.
    subscribers: HashMap<String, HashSet<PeerId>>,
    /// Copies gossipsub could not send because a peer was too slow (queue full, or queued
    /// past its deadline and dropped), as its SlowPeer events report them.
    slow_peer_failures: u64,
    /// Of those, copies of our own publishes refused as a whole (`AllQueuesFull`): nothing
    /// was lost there, the publisher retries.
    refused_publishes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishFailure {
    /// No subscribed peer to send to (yet): worth retrying briefly.
    #[error("no peer subscribed to the topic is connected")]
    NoPeers,
    /// Every peer's send queue is full: worth retrying briefly.
    #[error("the send queues of all {0} subscribed peers are full")]
    QueuesFull(usize),
    #[error("{0}")]
    Fatal(String),
}

impl PublishFailure {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PublishFailure::NoPeers | PublishFailure::QueuesFull(_)
        )
    }
}

/// A message delivered to the application.
pub enum Delivered<'a> {
    Message(&'a [u8]),
    Nothing,
}

impl Pubsub {
    pub fn new(swarm: Swarm<Behaviour>, variant: Variant) -> Self {
        Pubsub {
            swarm,
            variant,
            subscribers: HashMap::new(),
            slow_peer_failures: 0,
            refused_publishes: 0,
        }
    }

    /// Subscribes; false if already subscribed.
    pub fn subscribe(&mut self, topic: &str) -> Result<bool, String> {
        let b = self.swarm.behaviour_mut();
        if let Some(g) = b.gossipsub.as_mut() {
            g.subscribe(&IdentTopic::new(topic))
                .map_err(|e| format!("gossipsub refused to subscribe to {topic:?}: {e:?}"))
        } else if let Some(f) = b.floodsub.as_mut() {
            Ok(f.subscribe(floodsub::Topic::new(topic)))
        } else {
            unreachable!("one router is always enabled")
        }
    }

    /// Unsubscribes; false if not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let b = self.swarm.behaviour_mut();
        if let Some(g) = b.gossipsub.as_mut() {
            g.unsubscribe(&IdentTopic::new(topic))
        } else if let Some(f) = b.floodsub.as_mut() {
            f.unsubscribe(floodsub::Topic::new(topic))
        } else {
            false
        }
    }

    /// Largest payload the router can carry on `topic`.
    pub fn max_payload(&self, topic: &str, gossipsub_max_transmit: usize) -> usize {
        match self.variant {
            Variant::Gossipsub => gossipsub_max_transmit
                .saturating_sub(GOSSIPSUB_READ_SLACK + GOSSIPSUB_OVERHEAD + topic.len()),
            Variant::Floodsub => FLOODSUB_MAX_FRAME.saturating_sub(FLOODSUB_OVERHEAD + topic.len()),
        }
    }

    pub fn publish(&mut self, topic: &str, data: Vec<u8>) -> Result<(), PublishFailure> {
        if self.subscribed_peers(topic) == 0 && self.variant == Variant::Floodsub {
            // Floodsub would silently send to nobody; report it like gossipsub does.
            return Err(PublishFailure::NoPeers);
        }
        let b = self.swarm.behaviour_mut();
        if let Some(g) = b.gossipsub.as_mut() {
            match g.publish(IdentTopic::new(topic), data) {
                Ok(_) => Ok(()),
                Err(PublishError::NoPeersSubscribedToTopic) => Err(PublishFailure::NoPeers),
                Err(PublishError::AllQueuesFull(n)) => {
                    self.refused_publishes += n as u64;
                    Err(PublishFailure::QueuesFull(n))
                }
                Err(e) => Err(PublishFailure::Fatal(format!("gossipsub: {e}"))),
            }
        } else if let Some(f) = b.floodsub.as_mut() {
            // `publish_any`: a publisher need not subscribe to its topic (as with gossipsub's
            // fanout).
            f.publish_any(floodsub::Topic::new(topic), data);
            Ok(())
        } else {
            unreachable!("one router is always enabled")
        }
    }

    /// Message copies the router dropped because a peer could not take them in time (gossipsub
    /// only; retried publishes excluded).
    pub fn failed_sends(&self) -> u64 {
        self.slow_peer_failures
            .saturating_sub(self.refused_publishes)
    }

    /// Peers in our mesh for `topic`. Floodsub has no mesh: it sends to every subscribed peer,
    /// which is what its "mesh" is reported as.
    pub fn mesh_peers(&self, topic: &str) -> u32 {
        match self.swarm.behaviour().gossipsub.as_ref() {
            Some(g) => g.mesh_peers(&IdentTopic::new(topic).hash()).count() as u32,
            None => self.subscribed_peers(topic),
        }
    }

    /// Remote peers known to subscribe to `topic`.
    pub fn subscribed_peers(&self, topic: &str) -> u32 {
        self.subscribers.get(topic).map_or(0, |s| s.len() as u32)
    }

    pub fn on_connection_established(&mut self, peer: PeerId) {
        // Floodsub only talks to peers in its partial view and never adds any by itself.
        if let Some(f) = self.swarm.behaviour_mut().floodsub.as_mut() {
            f.add_node_to_partial_view(peer);
        }
    }

    /// The last connection to `peer` closed: it no longer subscribes to anything we can reach.
    pub fn on_peer_gone(&mut self, peer: &PeerId) {
        self.subscribers.retain(|_, peers| {
            peers.remove(peer);
            !peers.is_empty()
        });
    }

    /// Before a deliberate disconnect: floodsub re-dials peers in its partial view.
    pub fn forget_peer(&mut self, peer: &PeerId) {
        if let Some(f) = self.swarm.behaviour_mut().floodsub.as_mut() {
            f.remove_node_from_partial_view(peer);
        }
    }

    /// Updates subscriber knowledge from a behaviour event and returns a delivered message.
    pub fn on_event<'a>(&mut self, ev: &'a BehaviourEvent) -> Delivered<'a> {
        match ev {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. }) => {
                return Delivered::Message(&message.data);
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }) => {
                self.add_subscriber(topic.as_str(), *peer_id)
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Unsubscribed { peer_id, topic }) => {
                self.remove_subscriber(topic.as_str(), peer_id)
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            }) => {
                let n = failed_messages.priority + failed_messages.non_priority;
                tracing::debug!(%peer_id, n, "gossipsub dropped messages to a slow peer");
                self.slow_peer_failures += n as u64;
            }
            BehaviourEvent::Floodsub(floodsub::Event::Message(m)) => {
                return Delivered::Message(&m.data);
            }
            BehaviourEvent::Floodsub(floodsub::Event::Subscribed { peer_id, topic }) => {
                self.add_subscriber(topic.id(), *peer_id)
            }
            BehaviourEvent::Floodsub(floodsub::Event::Unsubscribed { peer_id, topic }) => {
                self.remove_subscriber(topic.id(), peer_id)
            }
            _ => {}
        }
        Delivered::Nothing
    }

    fn add_subscriber(&mut self, topic: &str, peer: PeerId) {
        // Only peers we are connected to count (a late event may follow a disconnect).
        if self.swarm.is_connected(&peer) {
            self.subscribers
                .entry(topic.to_owned())
                .or_default()
                .insert(peer);
        }
    }

    /// Tests: pretend a (not connected) peer subscribes to `topic`, or no longer does.
    #[cfg(test)]
    pub fn set_test_subscriber(&mut self, topic: &str, peer: PeerId, subscribed: bool) {
        if subscribed {
            self.subscribers
                .entry(topic.to_owned())
                .or_default()
                .insert(peer);
        } else {
            self.remove_subscriber(topic, &peer);
        }
    }

    fn remove_subscriber(&mut self, topic: &str, peer: &PeerId) {
        if let Some(peers) = self.subscribers.get_mut(topic) {
            peers.remove(peer);
            if peers.is_empty() {
                self.subscribers.remove(topic);
            }
        }
    }
}
