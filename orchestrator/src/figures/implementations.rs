//! Figures by node implementation (Rust, Go, JS, or one go-libp2p-pubsub version beside
//! another): delivery and latency per (publisher implementation → receiver implementation),
//! and memory and CPU per implementation. Computed once per run from the node records and
//! stored in `run.json` as `sections.implementations`, so `orchestrator report DIR`
//! re-renders it without the plan.
//!
//! Deliveries are counted exactly as in [`super::summary`] (seen-sets against what was
//! published while each receiver was subscribed). Latencies are exact merges of the nodes'
//! per-origin-group histograms: every group has one implementation, so the histograms of
//! origin groups of one implementation merge into that implementation's.

use super::summary::{dist, latency_of};
use crate::record::sections::{ByImplementation, ImplFigures, ImplPair};
use crate::record::{NodeRecord, NodeStatus};
use std::collections::{BTreeMap, HashMap};
use testbed_contract::histogram;
use testbed_contract::plan::Plan;
use testbed_contract::results::{NodeResult, Snapshot};

/// The label of each group of `plan`, in plan order: (group id, implementation, label). The
/// label is the implementation, with `@<impl_version>` when the fleet runs more than one
/// version of that implementation (`go@v0.14.2` beside `go@v0.19.0`; `@default` for a group
/// without `impl_version`).
pub fn group_labels(plan: &Plan) -> Vec<(String, String, String)> {
    let mut versions: BTreeMap<&str, Vec<Option<&str>>> = BTreeMap::new();
    for g in &plan.groups {
        let v = versions.entry(g.implementation.as_str()).or_default();
        if !v.contains(&g.impl_version.as_deref()) {
            v.push(g.impl_version.as_deref());
        }
    }
    plan.groups
        .iter()
        .map(|g| {
            let imp = g.implementation.as_str();
            let label = if versions[imp].len() > 1 {
                format!("{imp}@{}", g.impl_version.as_deref().unwrap_or("default"))
            } else {
                imp.to_string()
            };
            (g.id.clone(), imp.to_string(), label)
        })
        .collect()
}

/// The figures by implementation of a run of `plan`, when more than one implementation
/// (label) ran; a single-implementation run has none.
/// (origin group, receiver group) → (expected, delivered), as the churn accounting counts.
type GroupCounts = BTreeMap<(usize, usize), (u64, u64)>;

pub fn of_run(
    plan: &Plan,
    nodes: &[NodeRecord],
    versions: &BTreeMap<String, String>,
    window_rule: Option<&GroupCounts>,
) -> Option<ByImplementation> {
    let groups = group_labels(plan);
    let mut labels: Vec<&str> = groups.iter().map(|g| g.2.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    (labels.len() >= 2).then(|| {
        let mut by = compute(nodes, &groups, versions);
        if let Some(pairs) = window_rule {
            apply_window_rule(&mut by, &groups, pairs);
        }
        by
    })
}

/// Under churn the deliveries follow the window rule: the churn accounting's counts per
/// (origin group, receiver group), summed by label, replace the plain rule's.
fn apply_window_rule(
    by: &mut ByImplementation,
    groups: &[(String, String, String)],
    pairs: &GroupCounts,
) {
    let mut sums: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for (&(og, rg), &(expected, delivered)) in pairs {
        let (Some(o), Some(r)) = (groups.get(og), groups.get(rg)) else {
            continue;
        };
        let e = sums.entry((o.2.as_str(), r.2.as_str())).or_default();
        e.0 += expected;
        e.1 += delivered;
    }
    for p in &mut by.pairs {
        let (expected, delivered) = sums
            .get(&(p.publisher.as_str(), p.receiver.as_str()))
            .copied()
            .unwrap_or((0, 0));
        p.expected = expected;
        p.delivered = delivered;
        p.delivery_ratio = (expected > 0).then(|| delivered as f64 / expected as f64);
    }
}

/// `groups`: per plan group, in plan order (the order of `origin_group` numbers): its id, its
/// implementation and its label. `versions`: implementation → what its nodes said they run.
pub fn compute(
    nodes: &[NodeRecord],
    groups: &[(String, String, String)],
    versions: &BTreeMap<String, String>,
) -> ByImplementation {
    // Labels in order of first appearance.
    let mut labels: Vec<(String, String)> = Vec::new();
    for (_, imp, label) in groups {
        if !labels.iter().any(|(l, _)| l == label) {
            labels.push((label.clone(), imp.clone()));
        }
    }
    let nl = labels.len();
    let label_index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, (l, _))| (l.as_str(), i))
        .collect();
    let group_label: HashMap<&str, usize> = groups
        .iter()
        .map(|(id, _, l)| (id.as_str(), label_index[l.as_str()]))
        .collect();
    // origin_group number (plan group index) → label index.
    let origin_label: Vec<usize> = groups
        .iter()
        .map(|(_, _, l)| label_index[l.as_str()])
        .collect();
    let label_of = |n: &NodeRecord| group_label.get(n.group.as_str()).copied();

    // Deliveries: exact, from seen-sets and subscription spans.
    let mut counts = vec![(0u64, 0u64); nl * nl];
    let with_result: Vec<(&NodeRecord, usize)> = nodes
        .iter()
        .filter(|n| n.result.is_some())
        .filter_map(|n| Some((n, label_of(n)?)))
        .collect();
    for &(rn, rl) in &with_result {
        let r = rn.result.as_ref().expect("filtered");
        let seen: HashMap<u32, &[[u64; 2]]> = r
            .seen
            .iter()
            .map(|s| (s.origin, s.ranges.as_slice()))
            .collect();
        for &(on, ol) in &with_result {
            if on.index == rn.index {
                continue;
            }
            let o = on.result.as_ref().expect("filtered");
            for p in &o.published {
                let subscribed = r.subscriptions.iter().any(|s| {
                    s.topic == p.topic
                        && s.from_ns <= p.at_ns
                        && s.to_ns.is_none_or(|to| p.at_ns < to)
                });
                if subscribed {
                    let hit = seen
                        .get(&on.index)
                        .is_some_and(|ranges| contains(ranges, p.seq));
                    let c = &mut counts[ol * nl + rl];
                    c.0 += 1;
                    c.1 += u64::from(hit);
                }
            }
        }
    }

    // Latency: merge each receiver's per-origin-group histograms by label.
    let mut hists: HashMap<(usize, usize), hdrhistogram::Histogram<u64>> = HashMap::new();
    for &(rn, rl) in &with_result {
        for l in &rn.result.as_ref().expect("filtered").latency {
            let Some(&ol) = origin_label.get(l.origin_group as usize) else {
                continue;
            };
            let Ok(h) = histogram::decode(&l.hdr) else {
                continue;
            };
            let _ = hists
                .entry((ol, rl))
                .or_insert_with(histogram::new_latency_histogram)
                .add(&h);
        }
    }

    let mut pairs = Vec::new();
    for ol in 0..nl {
        for rl in 0..nl {
            let (expected, delivered) = counts[ol * nl + rl];
            let latency = hists.get(&(ol, rl)).and_then(latency_of);
            if expected > 0 || latency.is_some() {
                pairs.push(ImplPair {
                    publisher: labels[ol].0.clone(),
                    receiver: labels[rl].0.clone(),
                    expected,
                    delivered,
                    delivery_ratio: (expected > 0).then(|| delivered as f64 / expected as f64),
                    latency,
                });
            }
        }
    }

    let implementations = labels
        .iter()
        .enumerate()
        .map(|(li, (label, imp))| {
            let mine: Vec<&NodeRecord> = nodes.iter().filter(|n| label_of(n) == Some(li)).collect();
            ImplFigures {
                label: label.clone(),
                implementation: imp.clone(),
                version: version_of(label, imp, versions),
                ..figures_of(&mine)
            }
        })
        .collect();
    ByImplementation {
        implementations,
        pairs,
    }
}

/// The figures of some nodes (label, implementation and version left empty).
fn figures_of(mine: &[&NodeRecord]) -> ImplFigures {
    let results: Vec<_> = mine.iter().filter_map(|n| n.result.as_ref()).collect();
    let router: Vec<u64> = results.iter().filter_map(|r| r.router_duplicates).collect();
    // From the result, else the last snapshot (a crashed node still counts).
    let usage = |of_result: &dyn Fn(&NodeResult) -> f64, of_snapshot: &dyn Fn(&Snapshot) -> f64| {
        dist(mine.iter().filter_map(|n| {
            n.result
                .as_ref()
                .map(of_result)
                .or_else(|| n.last_snapshot.as_ref().map(of_snapshot))
        }))
    };
    ImplFigures {
        nodes: mine.len() as u32,
        nodes_failed: mine
            .iter()
            .filter(|n| {
                matches!(
                    n.status,
                    NodeStatus::Crashed | NodeStatus::Hung | NodeStatus::Failed
                )
            })
            .count() as u32,
        messages_published: results.iter().map(|r| r.published.len() as u64).sum(),
        received: results.iter().map(|r| r.received).sum(),
        duplicates: results.iter().map(|r| r.duplicates).sum(),
        router_duplicates: (!router.is_empty()).then(|| router.iter().sum()),
        peak_rss_bytes: usage(&|r| r.peak_rss_bytes as f64, &|s| s.rss_bytes as f64),
        final_rss_bytes: usage(&|r| r.final_rss_bytes as f64, &|s| s.rss_bytes as f64),
        cpu_s: usage(&|r| r.cpu_ns as f64 / 1e9, &|s| s.cpu_ns as f64 / 1e9),
        ..ImplFigures::default()
    }
}

/// What the nodes of `label` run: the version their hello named, when it matches the label's
/// version (labels `impl@version`); else the label's version.
fn version_of(label: &str, imp: &str, versions: &BTreeMap<String, String>) -> Option<String> {
    // The fleet records `<implementation> <hello.impl_version>`.
    let said = versions.get(imp).map(|s| {
        s.strip_prefix(imp)
            .map_or(s.as_str(), str::trim_start)
            .to_string()
    });
    match label.split_once('@') {
        Some((_, v)) => Some(
            said.filter(|s| s.contains(v))
                .unwrap_or_else(|| v.to_string()),
        ),
        None => said,
    }
}

/// Whether sorted inclusive `ranges` contain `seq`.
fn contains(ranges: &[[u64; 2]], seq: u64) -> bool {
    let i = ranges.partition_point(|r| r[1] < seq);
    ranges.get(i).is_some_and(|r| r[0] <= seq && seq <= r[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use testbed_contract::results::{
        ExitReason, NodeState, OriginLatency, Published, SeenFrom, Subscription,
    };

    fn hist(values: &[u64]) -> String {
        let mut h = histogram::new_latency_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        histogram::encode(&h).unwrap()
    }

    fn node(
        index: u32,
        group: &str,
        imp: &str,
        published: u64,
        seen: Vec<SeenFrom>,
        latency: Vec<OriginLatency>,
    ) -> NodeRecord {
        NodeRecord {
            index,
            group: group.into(),
            implementation: imp.into(),
            pid: None,
            peer_id: None,
            listen_addrs: vec![],
            status: NodeStatus::Ok,
            failure: None,
            failed_at: None,
            exit_code: Some(0),
            exit_signal: None,
            last_state: NodeState::Done,
            log: String::new(),
            mesh_ms: None,
            meshed: None,
            timeline: vec![],
            last_snapshot: None,
            result: Some(NodeResult {
                index,
                peer_id: "p".into(),
                exit: ExitReason::Finished,
                error: None,
                latency,
                latency_since_send: vec![],
                publish_lag: None,
                mesh: None,
                published: (0..published)
                    .map(|seq| Published {
                        seq,
                        topic: "t".into(),
                        at_ns: 100 + seq,
                        due_ns: None,
                    })
                    .collect(),
                received: seen
                    .iter()
                    .map(|s| s.ranges.iter().map(|r| r[1] - r[0] + 1).sum::<u64>())
                    .sum(),
                seen,
                subscriptions: vec![Subscription {
                    topic: "t".into(),
                    from_ns: 1,
                    to_ns: None,
                }],
                duplicates: 1,
                router_duplicates: None,
                bytes_in: None,
                bytes_out: None,
                peak_rss_bytes: 10 << 20,
                final_rss_bytes: 9 << 20,
                cpu_ns: 1_000_000_000,
                timeline: vec![],
                last_snapshot: None,
                slowest_traced_delivery: None,
                received_over_time: vec![],
                loop_lag: None,
                first_hops: None,
            }),
            finish_info: None,
            outside: None,
        }
    }

    #[test]
    fn pairs_merge_groups_of_one_implementation() {
        // Groups: 0 = r (rust), 1 = g1 (go), 2 = g2 (go). Node 0 rust, 1 go (g1), 2 go (g2).
        let groups = vec![
            ("r".to_string(), "rust".to_string(), "rust".to_string()),
            ("g1".to_string(), "go".to_string(), "go".to_string()),
            ("g2".to_string(), "go".to_string(), "go".to_string()),
        ];
        let nodes = vec![
            // Rust got both of node 1's messages and one of node 2's.
            node(
                0,
                "r",
                "rust",
                2,
                vec![
                    SeenFrom {
                        origin: 1,
                        ranges: vec![[0, 1]],
                    },
                    SeenFrom {
                        origin: 2,
                        ranges: vec![[1, 1]],
                    },
                ],
                vec![
                    OriginLatency {
                        origin_group: 1,
                        hdr: hist(&[1000, 2000]),
                    },
                    OriginLatency {
                        origin_group: 2,
                        hdr: hist(&[3000]),
                    },
                ],
            ),
            node(
                1,
                "g1",
                "go",
                2,
                vec![
                    SeenFrom {
                        origin: 0,
                        ranges: vec![[0, 1]],
                    },
                    SeenFrom {
                        origin: 2,
                        ranges: vec![[0, 1]],
                    },
                ],
                vec![
                    OriginLatency {
                        origin_group: 0,
                        hdr: hist(&[500, 600]),
                    },
                    OriginLatency {
                        origin_group: 2,
                        hdr: hist(&[100, 100]),
                    },
                ],
            ),
            node(
                2,
                "g2",
                "go",
                2,
                vec![
                    SeenFrom {
                        origin: 0,
                        ranges: vec![[0, 1]],
                    },
                    SeenFrom {
                        origin: 1,
                        ranges: vec![[0, 1]],
                    },
                ],
                vec![
                    OriginLatency {
                        origin_group: 0,
                        hdr: hist(&[700, 800]),
                    },
                    OriginLatency {
                        origin_group: 1,
                        hdr: hist(&[100, 100]),
                    },
                ],
            ),
        ];
        let b = compute(
            &nodes,
            &groups,
            &BTreeMap::from([("go".to_string(), "go go-libp2p-pubsub v0.19.0".to_string())]),
        );
        let get = |p: &str, r: &str| {
            b.pairs
                .iter()
                .find(|x| x.publisher == p && x.receiver == r)
                .unwrap()
        };
        let go_rust = get("go", "rust");
        assert_eq!((go_rust.expected, go_rust.delivered), (4, 3));
        assert_eq!(go_rust.latency.unwrap().count, 3);
        let rust_go = get("rust", "go");
        assert_eq!((rust_go.expected, rust_go.delivered), (4, 4));
        assert_eq!(rust_go.latency.unwrap().count, 4);
        assert_eq!(rust_go.delivery_ratio, Some(1.0));
        let go_go = get("go", "go");
        assert_eq!((go_go.expected, go_go.delivered), (4, 4));
        assert_eq!(go_go.latency.unwrap().count, 4);
        assert!(
            b.pairs
                .iter()
                .all(|p| !(p.publisher == "rust" && p.receiver == "rust"))
        );
        assert_eq!(b.implementations.len(), 2);
        assert_eq!(b.implementations[1].nodes, 2);
        assert_eq!(
            b.implementations[1].version.as_deref(),
            Some("go-libp2p-pubsub v0.19.0")
        );
        assert_eq!(b.implementations[1].cpu_s.median, 1.0);
    }
}
