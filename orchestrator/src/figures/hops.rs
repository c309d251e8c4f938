//! Hops per first delivery. Gossipsub messages carry no hop counter, but every Rust node
//! lists the peer each first copy came from (result field `first_hops`); per message, those
//! sources form its delivery tree: the publisher is hop 0, and a receiver is one hop further
//! than the node its first copy came from. With the mean hop count, a report's latency can be
//! set against the one-hop latency ("floor × hops"). The definition is in
//! docs/report-format.md ("Hops").

use crate::record::NodeRecord;
use crate::record::sections::{HopCount, HopsSection};
use std::collections::{BTreeMap, HashMap};

/// One message's tree: receiver → the node its first copy came from.
type Parents = HashMap<u32, u32>;

/// The section, or None when no node listed its sources.
pub fn section(nodes: &[NodeRecord]) -> Option<HopsSection> {
    let index_of: HashMap<&str, u32> = nodes
        .iter()
        .filter_map(|n| {
            let id = n.peer_id.as_deref().or_else(|| {
                let r = n.result.as_ref()?;
                (!r.peer_id.is_empty()).then_some(r.peer_id.as_str())
            })?;
            Some((id, n.index))
        })
        .collect();
    let mut s = HopsSection::default();
    let mut trees: HashMap<(u64, u64), Parents> = HashMap::new();
    for n in nodes {
        let Some(r) = &n.result else { continue };
        let Some(f) = &r.first_hops else {
            if r.received > 0 {
                s.not_reporting.push(n.index);
            }
            continue;
        };
        s.nodes_reporting += 1;
        if f.dropped > 0 {
            s.capped.push(n.index);
            s.dropped += f.dropped;
        }
        let from: Vec<Option<u32>> = f
            .peers
            .iter()
            .map(|p| index_of.get(p.as_str()).copied())
            .collect();
        for &[origin, seq, peer] in &f.deliveries {
            match usize::try_from(peer)
                .ok()
                .and_then(|p| from.get(p).copied().flatten())
            {
                Some(parent) => {
                    trees
                        .entry((origin, seq))
                        .or_default()
                        .insert(n.index, parent);
                }
                None => s.unknown_source += 1,
            }
        }
    }
    if s.nodes_reporting == 0 {
        return None;
    }
    let mut histogram: BTreeMap<u32, u64> = BTreeMap::new();
    for (&(origin, _), parents) in &trees {
        for &receiver in parents.keys() {
            match hops(origin, receiver, parents) {
                Some(h) => *histogram.entry(h).or_default() += 1,
                None => s.broken_chain += 1,
            }
        }
    }
    s.deliveries = histogram.values().sum();
    let total_hops: u64 = histogram.iter().map(|(&h, &c)| u64::from(h) * c).sum();
    s.mean_hops = (s.deliveries > 0).then(|| total_hops as f64 / s.deliveries as f64);
    s.max_hops = histogram.keys().next_back().copied();
    s.histogram = histogram
        .into_iter()
        .map(|(hops, deliveries)| HopCount { hops, deliveries })
        .collect();
    Some(s)
}

/// Hops from the message's origin to `receiver` along the tree; None when the chain stops
/// at a node with no listed source before reaching the origin (or, impossibly, loops).
fn hops(origin: u64, receiver: u32, parents: &Parents) -> Option<u32> {
    let mut at = receiver;
    let mut h = 0u32;
    while u64::from(at) != origin {
        at = *parents.get(&at)?;
        h += 1;
        if h as usize > parents.len() {
            return None;
        }
    }
    (h > 0).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use testbed_contract::results::FirstHops;

    /// Node `index` (peer id `p<index>`) with first copies `[origin, seq, from node]`.
    fn node(index: u32, received: u64, firsts: Option<&[[u64; 3]]>) -> NodeRecord {
        let mut n: NodeRecord = serde_json::from_value(serde_json::json!({
            "index": index, "group": "g", "implementation": "rust", "listen_addrs": [],
            "peer_id": format!("p{index}"),
            "status": "ok", "last_state": "done", "log": "", "timeline": [],
            "result": {
                "index": index, "peer_id": format!("p{index}"), "exit": "finished",
                "latency": [], "published": [], "seen": [], "subscriptions": [],
                "received": received, "duplicates": 0, "peak_rss_bytes": 0,
                "final_rss_bytes": 0, "cpu_ns": 0, "timeline": []
            }
        }))
        .unwrap();
        n.result.as_mut().unwrap().first_hops = firsts.map(|f| {
            // Peers listed in the order first seen, as the node does.
            let mut peers: Vec<String> = Vec::new();
            let deliveries = f
                .iter()
                .map(|&[o, s, from]| {
                    let id = format!("p{from}");
                    let slot = peers.iter().position(|p| *p == id).unwrap_or_else(|| {
                        peers.push(id);
                        peers.len() - 1
                    });
                    [o, s, slot as u64]
                })
                .collect();
            FirstHops {
                peers,
                deliveries,
                dropped: 0,
            }
        });
        n
    }

    /// A line 0 – 1 – 2 – 3: node 0's two messages take 1, 2 and 3 hops; node 3's message
    /// takes 1, 2 and 3 back.
    #[test]
    fn hops_follow_each_message_tree_to_its_publisher() {
        let nodes = [
            node(0, 1, Some(&[[3, 0, 1]])),
            node(1, 3, Some(&[[0, 0, 0], [0, 1, 0], [3, 0, 2]])),
            node(2, 3, Some(&[[0, 0, 1], [0, 1, 1], [3, 0, 3]])),
            node(3, 2, Some(&[[0, 0, 2], [0, 1, 2]])),
        ];
        let s = section(&nodes).unwrap();
        let hist: Vec<(u32, u64)> = s.histogram.iter().map(|h| (h.hops, h.deliveries)).collect();
        assert_eq!(hist, vec![(1, 3), (2, 3), (3, 3)]);
        assert_eq!(s.deliveries, 9);
        assert_eq!(s.mean_hops, Some(2.0));
        assert_eq!(s.max_hops, Some(3));
        assert_eq!((s.unknown_source, s.broken_chain, s.dropped), (0, 0, 0));
        assert_eq!(s.nodes_reporting, 4);
    }

    #[test]
    fn unknown_sources_and_broken_chains_are_counted_not_guessed() {
        let mut nodes = vec![
            // Node 1 got 0/0 from a peer outside the fleet.
            node(1, 1, Some(&[[0, 0, 9]])),
            // Node 2 got it from node 1: its chain is broken there.
            node(2, 1, Some(&[[0, 0, 1], [0, 1, 0]])),
            // A Go node: received, listed nothing.
            node(3, 2, None),
            node(0, 0, None),
        ];
        nodes[1]
            .result
            .as_mut()
            .unwrap()
            .first_hops
            .as_mut()
            .unwrap()
            .dropped = 5;
        let s = section(&nodes).unwrap();
        assert_eq!(s.unknown_source, 1);
        assert_eq!(s.broken_chain, 1);
        assert_eq!(s.deliveries, 1, "only 0/1 at node 2 reaches its publisher");
        assert_eq!(s.mean_hops, Some(1.0));
        assert_eq!(s.not_reporting, vec![3]);
        assert_eq!((s.capped.clone(), s.dropped), (vec![2], 5));
        assert_eq!(section(&[node(0, 3, None)]), None);
    }
}
