//! The mock discovery service, owned by the orchestrator (no DHT): peers are registered, get
//! an address once they listen, and announce the topics they join. When a peer joins a topic
//! the service picks up to K other peers of that topic and the orchestrator tells the joiner
//! to dial them, so a topic's subscribers find each other as in the reference simulator.
//!
//! The same type serves twice: the schedule's model uses its membership and its seeded picks
//! (so whom a joiner dials is part of the deterministic event sequence), and the executor keeps
//! a live instance with the real addresses.

use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use testbed_contract::protocol::PeerAddr;

#[derive(Debug, Clone, Default)]
pub struct MockDiscovery {
    /// Registered peers, with their address once known.
    peers: BTreeMap<u32, Option<PeerAddr>>,
    topics: BTreeMap<String, BTreeSet<u32>>,
}

impl MockDiscovery {
    pub fn register(&mut self, peer: u32) {
        self.peers.entry(peer).or_insert(None);
    }

    /// Records where a registered peer listens.
    pub fn set_addr(&mut self, addr: PeerAddr) {
        if let Some(slot) = self.peers.get_mut(&addr.index) {
            *slot = Some(addr);
        }
    }

    /// The peer is gone: it leaves every topic.
    pub fn unregister(&mut self, peer: u32) {
        self.peers.remove(&peer);
        for members in self.topics.values_mut() {
            members.remove(&peer);
        }
    }

    pub fn is_registered(&self, peer: u32) -> bool {
        self.peers.contains_key(&peer)
    }

    pub fn addr(&self, peer: u32) -> Option<&PeerAddr> {
        self.peers.get(&peer)?.as_ref()
    }

    /// Creates an empty topic (no-op when it exists).
    pub fn create_topic(&mut self, topic: &str) {
        self.topics.entry(topic.to_string()).or_default();
    }

    /// Forgets a topic and its members' announcements; returns the members it had.
    pub fn remove_topic(&mut self, topic: &str) -> BTreeSet<u32> {
        self.topics.remove(topic).unwrap_or_default()
    }

    pub fn announce(&mut self, peer: u32, topic: &str) {
        self.topics
            .entry(topic.to_string())
            .or_default()
            .insert(peer);
    }

    pub fn withdraw(&mut self, peer: u32, topic: &str) {
        if let Some(m) = self.topics.get_mut(topic) {
            m.remove(&peer);
        }
    }

    pub fn members(&self, topic: &str) -> Option<&BTreeSet<u32>> {
        self.topics.get(topic)
    }

    pub fn topics(&self) -> impl Iterator<Item = (&String, &BTreeSet<u32>)> {
        self.topics.iter()
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Up to `k` random peers of `topic` other than `exclude`, in the order picked. The same
    /// state and random generator give the same answer.
    pub fn find(&self, topic: &str, k: usize, exclude: u32, rng: &mut impl Rng) -> Vec<u32> {
        let Some(members) = self.topics.get(topic) else {
            return Vec::new();
        };
        let mut pool: Vec<u32> = members.iter().copied().filter(|&p| p != exclude).collect();
        let mut picked = Vec::new();
        while picked.len() < k && !pool.is_empty() {
            let i = rng.random_range(0..pool.len());
            picked.push(pool.swap_remove(i));
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn finds_other_members_deterministically() {
        let mut d = MockDiscovery::default();
        for p in 0..10 {
            d.register(p);
            d.announce(p, "t");
        }
        let a = d.find("t", 3, 4, &mut ChaCha8Rng::seed_from_u64(7));
        let b = d.find("t", 3, 4, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        assert!(!a.contains(&4));
        assert_eq!(
            d.find("t", 50, 4, &mut ChaCha8Rng::seed_from_u64(1)).len(),
            9
        );
        assert!(
            d.find("none", 3, 0, &mut ChaCha8Rng::seed_from_u64(1))
                .is_empty()
        );
        d.unregister(5);
        assert!(!d.members("t").unwrap().contains(&5));
    }
}
