//! Deliveries under churn, counted per delivery window. A message published at `p` on topic
//! `t` is **expected** at a receiver only when the receiver was subscribed to `t` for the
//! whole window `[p, p + delivery_window]` and took part until the window closed; it is then
//! **received** (its seen-set holds the message) or **missed**. Everything else — a receiver
//! that joined after `p`, left or was removed before the window closed — is neither a hit
//! nor a miss (a delivery there counts as *outside the window*).
//!
//! Nodes that left no result (killed with SIGKILL) are covered by the orchestrator's own
//! record: their subscriptions as the orchestrator acknowledged them, their removal time, and
//! the messages their acknowledged publishes produced (sequence numbers continue from the
//! count at the phase start; the publish time is known to lie between the command and its
//! acknowledgement, and the whole interval must be covered). Without a seen-set, what such a
//! node received cannot be checked message by message: those expected deliveries are counted
//! as **unverifiable**, never as misses.

use super::summary::{SeenIndex, subscribed_through};
use crate::record::churn_log::{ChurnLog, EventRecord};
use crate::record::sections::{ChurnSection, Counts, RemovedNode, TopicCounts};
use crate::record::{GroupPair, NodeRecord, Summary};
use std::collections::{BTreeMap, HashMap};
use testbed_contract::results::{NodeState, Subscription};

/// The result of counting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accounting {
    pub total: Counts,
    pub per_topic: BTreeMap<String, Counts>,
    /// (origin group, receiver group) → (expected, received).
    pub pairs: BTreeMap<(usize, usize), (u64, u64)>,
    pub duplicates: u64,
    pub reconstructed: u64,
    /// Distinct deliveries in every known seen-set.
    pub seen_total: u64,
    /// Per message: (publish time ns, expected, received) under the window rule, for the
    /// delivery-over-time view.
    pub by_message: Vec<(u64, u64, u64)>,
}

struct Msg<'a> {
    origin: u32,
    seq: u64,
    topic: &'a str,
    /// The publish happened within `[from_ns, to_ns]`.
    from_ns: u64,
    to_ns: u64,
}

struct Receiver<'a> {
    index: u32,
    group: usize,
    seen: Option<SeenIndex<'a>>,
    spans: &'a [Subscription],
    until_ns: u64,
}

/// When a node stopped taking part: removal, else the start of its draining (finish, abort,
/// signal), else the last thing heard from it.
fn until_ns(n: &NodeRecord, log: &ChurnLog) -> u64 {
    let removed = log.removals.get(&n.index).map(|r| r.at_ns);
    let own = match &n.result {
        Some(r) => r
            .timeline
            .iter()
            .find(|c| c.state == NodeState::Draining)
            .or(r.timeline.last())
            .map(|c| c.at_ns),
        None => n
            .last_snapshot
            .as_ref()
            .map(|s| s.at_ns)
            .into_iter()
            .chain(n.timeline.last().map(|c| c.at_ns))
            .max(),
    };
    match (removed, own) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(0),
    }
}

pub fn account(nodes: &[NodeRecord], log: &ChurnLog, group_names: &[String]) -> Accounting {
    let window = log.config.delivery_window.as_nanos() as u64;
    let group_index: HashMap<&str, usize> = group_names
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let group_of = |n: &NodeRecord| {
        group_index
            .get(n.group.as_str())
            .copied()
            .unwrap_or(usize::MAX)
    };
    let mut acc = Accounting::default();
    let empty: &[Subscription] = &[];

    let mut msgs: Vec<Msg> = Vec::new();
    for n in nodes {
        match &n.result {
            Some(r) => msgs.extend(r.published.iter().map(|p| Msg {
                origin: n.index,
                seq: p.seq,
                topic: &p.topic,
                from_ns: p.at_ns,
                to_ns: p.at_ns,
            })),
            None => {
                let mut seq = log.base_seq.get(&n.index).copied().unwrap_or(0);
                for p in log.publishes.get(&n.index).into_iter().flatten() {
                    for _ in 0..p.published {
                        msgs.push(Msg {
                            origin: n.index,
                            seq,
                            topic: &p.topic,
                            from_ns: p.sent_ns,
                            to_ns: p.acked_ns,
                        });
                        seq += 1;
                        acc.reconstructed += 1;
                    }
                }
            }
        }
        acc.duplicates += n
            .result
            .as_ref()
            .map(|r| r.duplicates)
            .or(n.last_snapshot.as_ref().map(|s| s.duplicates))
            .unwrap_or(0);
    }
    let receivers: Vec<Receiver> = nodes
        .iter()
        .map(|n| Receiver {
            index: n.index,
            group: group_of(n),
            seen: n.result.as_ref().map(|r| SeenIndex::new(&r.seen)),
            spans: match &n.result {
                Some(r) => &r.subscriptions,
                None => log.spans.get(&n.index).map_or(empty, |s| s.as_slice()),
            },
            until_ns: until_ns(n, log),
        })
        .collect();
    acc.seen_total = receivers
        .iter()
        .filter_map(|r| r.seen.as_ref())
        .map(|s| s.total)
        .sum();
    let origin_group: HashMap<u32, usize> = nodes.iter().map(|n| (n.index, group_of(n))).collect();

    for m in &msgs {
        let c = acc.per_topic.entry(m.topic.to_string()).or_default();
        c.messages += 1;
        let og = origin_group.get(&m.origin).copied().unwrap_or(usize::MAX);
        let (mut expected, mut received) = (0u64, 0u64);
        for r in receivers.iter().filter(|r| r.index != m.origin) {
            let full = subscribed_through(
                r.spans,
                m.topic,
                m.from_ns,
                m.to_ns.saturating_add(window),
                r.until_ns,
            );
            match (&r.seen, full) {
                (Some(seen), true) => {
                    let hit = seen.contains(m.origin, m.seq);
                    expected += 1;
                    received += u64::from(hit);
                    c.expected += 1;
                    c.received += u64::from(hit);
                    c.missed += u64::from(!hit);
                    let p = acc.pairs.entry((og, r.group)).or_default();
                    p.0 += 1;
                    p.1 += u64::from(hit);
                }
                (None, true) => c.unverifiable += 1,
                (Some(seen), false) => {
                    c.outside_window += u64::from(seen.contains(m.origin, m.seq))
                }
                (None, false) => {}
            }
        }
        acc.by_message.push((m.from_ns, expected, received));
    }
    for c in acc.per_topic.values() {
        acc.total.add(c);
    }
    acc
}

/// Under churn the summary's delivery figures and the group pairs follow the window rule:
/// `summary` and `pairs` (computed by [`super::summary::summarize`]) are corrected from
/// `acc`.
pub fn apply_window_rule(
    summary: &mut Summary,
    pairs: &mut Vec<GroupPair>,
    acc: &Accounting,
    group_names: &[String],
) {
    summary.expected_deliveries = acc.total.expected;
    summary.delivered = acc.total.received;
    summary.delivery_ratio = acc.total.ratio();
    summary.unexpected_deliveries = acc.seen_total.saturating_sub(acc.total.received);
    for gp in pairs.iter_mut() {
        gp.expected = 0;
        gp.delivered = 0;
    }
    for (&(og, rg), &(expected, delivered)) in &acc.pairs {
        let (Some(o), Some(r)) = (group_names.get(og), group_names.get(rg)) else {
            continue;
        };
        match pairs
            .iter_mut()
            .find(|g| &g.origin_group == o && &g.receiver_group == r)
        {
            Some(g) => {
                g.expected = expected;
                g.delivered = delivered;
            }
            None => pairs.push(GroupPair {
                origin_group: o.clone(),
                receiver_group: r.clone(),
                expected,
                delivered,
                latency: None,
            }),
        }
    }
}

/// run.json's `churn` section.
pub fn section(nodes: &[NodeRecord], log: &ChurnLog, acc: &Accounting) -> ChurnSection {
    let t0 = log.started_ns;
    let mut removed: Vec<RemovedNode> = log
        .removals
        .iter()
        .map(|(&index, r)| {
            let n = nodes.iter().find(|n| n.index == index);
            RemovedNode {
                index,
                mode: r.mode.as_str().to_string(),
                at_s: r.at_ns.saturating_sub(t0) as f64 / 1e9,
                has_result: n.is_some_and(|n| n.result.is_some()),
                has_snapshot: n.is_some_and(|n| n.last_snapshot.is_some() || n.result.is_some()),
            }
        })
        .collect();
    removed.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    ChurnSection {
        duration_s: log.config.duration.as_secs_f64(),
        heartbeat_ms: log.config.heartbeat.as_secs_f64() * 1e3,
        delivery_window_ms: log.config.delivery_window.as_secs_f64() * 1e3,
        remove_mode: log.config.remove_mode.as_str().to_string(),
        events_file: "events.jsonl".into(),
        events_total: log.events.len() as u64,
        events: counts_by_kind(&log.events),
        peers_added: log.added.len() as u32,
        peers_removed: log.removals.len() as u32,
        removed,
        total: acc.total,
        per_topic: acc
            .per_topic
            .iter()
            .map(|(topic, counts)| TopicCounts {
                topic: topic.clone(),
                counts: *counts,
            })
            .collect(),
        duplicates: acc.duplicates,
        reconstructed_messages: acc.reconstructed,
        samples: log.samples.clone(),
        last_live: log.last_live.clone(),
    }
}

/// Per event kind: how many were scheduled and how they went.
pub fn counts_by_kind(events: &[EventRecord]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for e in events {
        *out.entry(e.event.kind().as_str().to_string())
            .or_default()
            .entry(e.outcome.as_str().to_string())
            .or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NodeStatus;
    use crate::record::churn_log::{OrchPublish, Removal};
    use testbed_contract::plan::RemoveMode;
    use testbed_contract::results::{
        ExitReason, NodeResult, Published, SeenFrom, Snapshot, StateChange,
    };

    const S: u64 = 1_000_000_000;

    fn result(
        index: u32,
        subs: Vec<Subscription>,
        published: Vec<Published>,
        seen: Vec<SeenFrom>,
        end_ns: u64,
    ) -> NodeResult {
        NodeResult {
            index,
            peer_id: format!("p{index}"),
            exit: ExitReason::Finished,
            error: None,
            latency: vec![],
            latency_since_send: vec![],
            publish_lag: None,
            mesh: None,
            published,
            seen,
            subscriptions: subs,
            received: 0,
            duplicates: 0,
            router_duplicates: None,
            bytes_in: None,
            bytes_out: None,
            peak_rss_bytes: 0,
            final_rss_bytes: 0,
            cpu_ns: 0,
            timeline: vec![StateChange {
                state: NodeState::Draining,
                at_ns: end_ns,
                detail: None,
            }],
            last_snapshot: None,
            slowest_traced_delivery: None,
            received_over_time: vec![],
            loop_lag: None,
            first_hops: None,
        }
    }

    fn node(index: u32, result: Option<NodeResult>) -> NodeRecord {
        NodeRecord {
            index,
            group: "g".into(),
            implementation: "rust".into(),
            pid: None,
            peer_id: None,
            listen_addrs: vec![],
            status: NodeStatus::Ok,
            failure: None,
            failed_at: None,
            exit_code: None,
            exit_signal: None,
            last_state: NodeState::Done,
            log: String::new(),
            mesh_ms: None,
            meshed: None,
            timeline: vec![],
            last_snapshot: None,
            result,
            finish_info: None,
            outside: None,
        }
    }

    fn sub(topic: &str, from: u64, to: Option<u64>) -> Subscription {
        Subscription {
            topic: topic.into(),
            from_ns: from,
            to_ns: to,
        }
    }

    fn log(window_s: u64) -> ChurnLog {
        let mut l = ChurnLog::default();
        l.config.delivery_window = std::time::Duration::from_secs(window_s);
        l
    }

    /// Node 0 publishes at 10 s with a 5 s window. Node 1 stays (and gets it), node 2 stays
    /// (and misses it), node 3 leaves the topic at 12 s (mid-window, did not get it), node 4
    /// joined at 11 s (got it anyway), node 5 is removed at 13 s.
    #[test]
    fn a_receiver_that_leaves_mid_window_is_not_a_miss() {
        let seen0 = || {
            vec![SeenFrom {
                origin: 0,
                ranges: vec![[0, 0]],
            }]
        };
        let end = 100 * S;
        let published = vec![Published {
            seq: 0,
            topic: "t".into(),
            at_ns: 10 * S,
            due_ns: None,
        }];
        let nodes = vec![
            node(
                0,
                Some(result(0, vec![sub("t", S, None)], published, vec![], end)),
            ),
            node(
                1,
                Some(result(1, vec![sub("t", S, None)], vec![], seen0(), end)),
            ),
            node(
                2,
                Some(result(2, vec![sub("t", S, None)], vec![], vec![], end)),
            ),
            node(
                3,
                Some(result(
                    3,
                    vec![sub("t", S, Some(12 * S))],
                    vec![],
                    vec![],
                    end,
                )),
            ),
            node(
                4,
                Some(result(
                    4,
                    vec![sub("t", 11 * S, None)],
                    vec![],
                    seen0(),
                    end,
                )),
            ),
            node(
                5,
                Some(result(5, vec![sub("t", S, None)], vec![], vec![], end)),
            ),
        ];
        let mut l = log(5);
        l.removals.insert(
            5,
            Removal {
                at_ns: 13 * S,
                mode: RemoveMode::Graceful,
            },
        );
        let a = account(&nodes, &l, &["g".to_string()]);
        assert_eq!(
            a.total,
            Counts {
                messages: 1,
                expected: 2,
                received: 1,
                missed: 1,
                unverifiable: 0,
                outside_window: 1
            }
        );
        assert_eq!(a.per_topic["t"], a.total);
        assert_eq!(a.pairs[&(0, 0)], (2, 1));
        // Delivery over time follows the same rule: the plain rule would expect the message
        // at nodes 1, 2, 3 and 5 (subscribed at 10 s), the window rule at 1 and 2 only.
        assert_eq!(a.by_message, vec![(10 * S, 2, 1)]);
        let plain = crate::figures::summary::delivery_over_time(&nodes, 0);
        let windowed = crate::figures::summary::bucket_over_time(&a.by_message, 0);
        assert_eq!((plain[0].expected, plain[0].delivered), (4, 1));
        assert_eq!((windowed[0].expected, windowed[0].delivered), (2, 1));
        // The same receiver staying until the window closes is a miss.
        let mut l = log(1);
        l.removals.insert(
            5,
            Removal {
                at_ns: 13 * S,
                mode: RemoveMode::Graceful,
            },
        );
        let a = account(&nodes, &l, &["g".to_string()]);
        assert_eq!(
            a.total.missed,
            1 + 1 + 1,
            "nodes 2, 3 (window closed at 11 s) and 5"
        );
    }

    /// A killed publisher's messages come from the orchestrator's record; a killed receiver's
    /// full windows are unverifiable, never misses.
    #[test]
    fn killed_nodes_use_the_orchestrators_record() {
        let end = 100 * S;
        let mut killed_pub = node(0, None);
        killed_pub.last_snapshot = Some(Snapshot {
            at_ns: 30 * S,
            duplicates: 2,
            ..Snapshot::default()
        });
        let mut killed_recv = node(2, None);
        killed_recv.last_snapshot = Some(Snapshot {
            at_ns: 40 * S,
            ..Snapshot::default()
        });
        let nodes = vec![
            killed_pub,
            node(
                1,
                Some(result(
                    1,
                    vec![sub("t", S, None)],
                    vec![],
                    vec![SeenFrom {
                        origin: 0,
                        ranges: vec![[7, 8]],
                    }],
                    end,
                )),
            ),
            killed_recv,
        ];
        let mut l = log(5);
        l.base_seq.insert(0, 7);
        l.publishes.insert(
            0,
            vec![
                OrchPublish {
                    topic: "t".into(),
                    sent_ns: 10 * S,
                    acked_ns: 10 * S + 1000,
                    published: 1,
                },
                OrchPublish {
                    topic: "t".into(),
                    sent_ns: 11 * S,
                    acked_ns: 11 * S + 1000,
                    published: 0,
                },
                OrchPublish {
                    topic: "t".into(),
                    sent_ns: 12 * S,
                    acked_ns: 12 * S + 1000,
                    published: 1,
                },
                // Its window is still open when node 2 is killed at 20 s.
                OrchPublish {
                    topic: "t".into(),
                    sent_ns: 18 * S,
                    acked_ns: 18 * S + 1000,
                    published: 1,
                },
            ],
        );
        l.spans.insert(2, vec![sub("t", 2 * S, Some(20 * S))]);
        l.removals.insert(
            0,
            Removal {
                at_ns: 30 * S,
                mode: RemoveMode::Kill,
            },
        );
        l.removals.insert(
            2,
            Removal {
                at_ns: 20 * S,
                mode: RemoveMode::Kill,
            },
        );
        let a = account(&nodes, &l, &["g".to_string()]);
        assert_eq!(a.reconstructed, 3);
        // Seqs 7, 8 (seen by node 1) and 9 (not seen: a miss).
        assert_eq!(a.total.expected, 3);
        assert_eq!(a.total.received, 2);
        assert_eq!(a.total.missed, 1);
        assert_eq!(
            a.total.unverifiable, 2,
            "node 2's full windows: seqs 7 and 8"
        );
        assert_eq!(a.duplicates, 2);
    }
}
