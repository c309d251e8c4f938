//! Where each first delivery came from: gossipsub names the peer that forwarded a copy (its
//! propagation source), and the orchestrator chains those per message, from the publisher
//! on, into the message's delivery tree and its hop counts. Gossipsub messages carry no hop
//! counter, and adding one would change what is on the wire.
//!
//! Cheap and bounded: a peer id is kept once, a delivery is three integers, and the list
//! stops at [`MAX_DELIVERIES`] (counting what it left out).

use crate::swarm::BehaviourEvent;
use libp2p::PeerId;
use std::collections::HashMap;
use testbed_contract::results::FirstHops;

/// Most first deliveries listed (24 bytes each: 192 KiB at most).
pub const MAX_DELIVERIES: usize = 8_192;

#[derive(Default)]
pub struct FirstHopLog {
    slot: HashMap<PeerId, u64>,
    peers: Vec<PeerId>,
    deliveries: Vec<[u64; 3]>,
    dropped: u64,
}

impl FirstHopLog {
    /// Notes that the first copy of (origin, seq) came from `from`.
    pub fn record(&mut self, origin: u32, seq: u64, from: PeerId) {
        if self.deliveries.len() >= MAX_DELIVERIES {
            self.dropped += 1;
            return;
        }
        let next = self.peers.len() as u64;
        let slot = *self.slot.entry(from).or_insert_with(|| {
            self.peers.push(from);
            next
        });
        self.deliveries.push([u64::from(origin), seq, slot]);
    }

    /// The result's `first_hops`; `None` when nothing was delivered.
    pub fn to_result(&self) -> Option<FirstHops> {
        if self.deliveries.is_empty() && self.dropped == 0 {
            return None;
        }
        Some(FirstHops {
            peers: self.peers.iter().map(PeerId::to_string).collect(),
            deliveries: self.deliveries.clone(),
            dropped: self.dropped,
        })
    }
}

/// The peer a delivered message came from: gossipsub's propagation source. Floodsub does not
/// say (its `source` is the author), so floodsub deliveries are not listed.
pub fn propagation_source(ev: &BehaviourEvent) -> Option<PeerId> {
    match ev {
        BehaviourEvent::Gossipsub(libp2p::gossipsub::Event::Message {
            propagation_source, ..
        }) => Some(*propagation_source),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_listed_once_and_the_list_is_bounded() {
        let mut log = FirstHopLog::default();
        assert_eq!(log.to_result(), None);
        let (a, b) = (PeerId::random(), PeerId::random());
        log.record(0, 0, a);
        log.record(0, 1, b);
        log.record(3, 0, a);
        let r = log.to_result().unwrap();
        assert_eq!(r.peers, vec![a.to_string(), b.to_string()]);
        assert_eq!(r.deliveries, vec![[0, 0, 0], [0, 1, 1], [3, 0, 0]]);
        assert_eq!(r.dropped, 0);
        for seq in 2..MAX_DELIVERIES as u64 + 2 {
            log.record(1, seq, b);
        }
        let r = log.to_result().unwrap();
        assert_eq!(r.deliveries.len(), MAX_DELIVERIES);
        assert_eq!(r.dropped, 3);
    }
}
