//! Who dials whom at the start of a run, decided from the plan's seed so a run is repeatable.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use testbed_contract::plan::{Topology, TopologyKind};

/// `dials[i]` lists the nodes node `i` dials. Every pair appears at most once (in either
/// direction) and the graph is connected.
pub fn dial_plan(topology: &Topology, nodes: u32, seed: u64) -> Vec<Vec<u32>> {
    let n = nodes as usize;
    let mut dials = vec![Vec::new(); n];
    match topology.kind {
        TopologyKind::None => {}
        TopologyKind::Full => {
            for (i, d) in dials.iter_mut().enumerate() {
                d.extend(0..i as u32);
            }
        }
        TopologyKind::Bootstrap => {
            let b = (topology.bootstrap_nodes as usize).min(n);
            for (i, d) in dials.iter_mut().enumerate() {
                // Bootstrap nodes dial the bootstrap nodes before them, so they form a clique.
                d.extend((0..b.min(i)).map(|j| j as u32));
            }
        }
        TopologyKind::Random => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x746f_706f_6c6f_6779);
            let mut linked = std::collections::HashSet::new();
            let degree = topology.degree as usize;
            for (i, d) in dials.iter_mut().enumerate().skip(1) {
                // One earlier node keeps the graph connected (a random recursive tree) …
                let first = rng.random_range(0..i);
                d.push(first as u32);
                linked.insert((first, i));
            }
            for (i, d) in dials.iter_mut().enumerate() {
                // … and further random peers up to the degree.
                let want = degree.saturating_sub(d.len()).min(n.saturating_sub(1));
                if want == 0 {
                    continue;
                }
                for j in sample(&mut rng, n, (want * 2).min(n)).into_iter() {
                    if d.len() >= degree {
                        break;
                    }
                    let key = (i.min(j), i.max(j));
                    if j != i && linked.insert(key) {
                        d.push(j as u32);
                    }
                }
            }
        }
    }
    dials
}

/// The fleet nodes each of `count` witnesses dials: `peers` distinct nodes of `0..nodes` (all
/// of them when the fleet is smaller), drawn from the seed apart from the fleet's own dials,
/// so adding witnesses never changes who in the fleet dials whom.
pub fn witness_dials(nodes: u32, count: u32, peers: u32, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7769_746e_6573_7373);
    let take = peers.min(nodes) as usize;
    (0..count)
        .map(|_| {
            let mut d: Vec<u32> = sample(&mut rng, nodes as usize, take)
                .into_iter()
                .map(|j| j as u32)
                .collect();
            d.sort_unstable();
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witnesses_dial_distinct_fleet_nodes_without_changing_the_fleets_dials() {
        let w = witness_dials(20, 3, 4, 7);
        assert_eq!(w.len(), 3);
        for d in &w {
            assert_eq!(d.len(), 4);
            assert!(d.windows(2).all(|p| p[0] < p[1]) && d.iter().all(|&j| j < 20));
        }
        assert_eq!(witness_dials(3, 1, 4, 7), vec![vec![0, 1, 2]]);
        assert_eq!(w, witness_dials(20, 3, 4, 7), "a function of the seed");
    }

    fn connected(dials: &[Vec<u32>]) -> bool {
        let n = dials.len();
        let mut adj = vec![Vec::new(); n];
        for (i, d) in dials.iter().enumerate() {
            for &j in d {
                adj[i].push(j as usize);
                adj[j as usize].push(i);
            }
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0];
        while let Some(v) = stack.pop() {
            if !std::mem::replace(&mut seen[v], true) {
                stack.extend(&adj[v]);
            }
        }
        seen.iter().all(|s| *s)
    }

    #[test]
    fn random_is_connected_deterministic_and_simple() {
        let t = Topology::default();
        for n in [1, 2, 5, 50, 500] {
            let a = dial_plan(&t, n, 7);
            assert!(connected(&a), "n={n}");
            assert_eq!(a, dial_plan(&t, n, 7));
            let mut pairs = std::collections::HashSet::new();
            for (i, d) in a.iter().enumerate() {
                for &j in d {
                    assert_ne!(i as u32, j);
                    assert!(
                        pairs.insert((i.min(j as usize), i.max(j as usize))),
                        "duplicate link"
                    );
                }
            }
        }
        assert_ne!(dial_plan(&t, 50, 7), dial_plan(&t, 50, 8));
    }

    #[test]
    fn full_and_bootstrap() {
        let full = Topology {
            kind: TopologyKind::Full,
            ..Topology::default()
        };
        let d = dial_plan(&full, 4, 0);
        assert_eq!(d.iter().map(Vec::len).sum::<usize>(), 6);
        let boot = Topology {
            kind: TopologyKind::Bootstrap,
            bootstrap_nodes: 2,
            ..Topology::default()
        };
        let d = dial_plan(&boot, 5, 0);
        assert_eq!(d, vec![vec![], vec![0], vec![0, 1], vec![0, 1], vec![0, 1]]);
        assert!(connected(&d));
    }
}
