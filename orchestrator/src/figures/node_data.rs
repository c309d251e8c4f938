//! Checks of what nodes report before any figure trusts it: histograms that do not decode,
//! publishes the orchestrator never asked for or that no ack counted, more messages received
//! than the others were asked to publish, counters whose fleet total would wrap, seen-sets
//! that are impossible (a range running backwards, more messages than a counter holds,
//! messages from an origin outside the fleet or beyond what that origin published). Each
//! problem is an anomaly of the node that reported it; the run then fails naming it instead
//! of reporting a silently smaller, larger or wrapped figure.

use std::collections::HashMap;
use testbed_contract::histogram;
use testbed_contract::results::NodeResult;

/// What the orchestrator asked one node to publish: the bound its result must stay within.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishBound {
    /// Messages its publish commands asked for. Sequence numbers run from 0, one per message
    /// a command asked for, so every one the node used is below this.
    pub asked: u64,
    /// Of those, what each command's ack says it published (a command never acknowledged,
    /// cut short by an abort or a signal, counts with all it asked for).
    pub acknowledged: u64,
}

impl PublishBound {
    /// From each publish command's count and its ack's `published` (None: no such ack).
    pub fn from_commands(commands: impl IntoIterator<Item = (u32, Option<u64>)>) -> Self {
        commands
            .into_iter()
            .fold(PublishBound::default(), |b, (count, acked)| {
                let count = u64::from(count);
                PublishBound {
                    asked: b.asked.saturating_add(count),
                    acknowledged: b
                        .acknowledged
                        .saturating_add(acked.map_or(count, |a| a.min(count))),
                }
            })
    }
}

/// Every problem of every result, as (node index, reason). `results` are the results that
/// arrived, with the node each came from; `bounds` what each node was asked to publish (a
/// node missing from it was asked nothing); `fleet` the number of nodes the run had.
pub fn anomalies(
    results: &[(u32, &NodeResult)],
    bounds: &HashMap<u32, PublishBound>,
    fleet: u32,
) -> Vec<(u32, String)> {
    let bound = |i: u32| bounds.get(&i).copied().unwrap_or_default();
    // The highest sequence number each origin may have published: what it says it published
    // where its result came (checked against its bound below), else what it was asked for.
    let mut published: HashMap<u32, Option<u64>> = (0..fleet)
        .map(|i| (i, bound(i).asked.checked_sub(1)))
        .collect();
    for (i, r) in results {
        let claimed = r.published.iter().map(|p| p.seq).max();
        let asked = bound(*i).asked.checked_sub(1);
        published.insert(*i, claimed.zip(asked).map(|(c, a)| c.min(a)));
    }
    let asked_in_all = (0..fleet).fold(0u64, |t, i| t.saturating_add(bound(i).asked));
    let mut out = counter_problems(results);
    for &(i, r) in results {
        for (what, l) in r.latency.iter().map(|l| ("latency", l)).chain(
            r.latency_since_send
                .iter()
                .map(|l| ("latency since send", l)),
        ) {
            if let Err(e) = histogram::decode(&l.hdr) {
                out.push((i, format!("node {i} sent a {what} histogram (origin group {}) that does not decode: {e}", l.origin_group)));
            }
        }
        if let Some(lag) = &r.publish_lag
            && let Err(e) = histogram::decode(lag)
        {
            out.push((
                i,
                format!("node {i} sent a publish-lag histogram that does not decode: {e}"),
            ));
        }
        if let Some(why) = publish_problem(i, r, bound(i)) {
            out.push((i, why));
        }
        // First deliveries: at most one per message the other nodes were asked for.
        let possible = asked_in_all.saturating_sub(bound(i).asked);
        if r.received > possible {
            out.push((
                i,
                format!(
                    "node {i} reports {} messages received, but the other nodes were asked for {possible}",
                    r.received
                ),
            ));
        }
        if let Some(why) = seen_problem(i, r, fleet, &published) {
            out.push((i, why));
        }
    }
    out
}

/// A counter the figures sum over the fleet whose total would not fit in 64 bits: the node
/// with the largest value is named, instead of a total that wraps.
fn counter_problems(results: &[(u32, &NodeResult)]) -> Vec<(u32, String)> {
    type Counter = (&'static str, fn(&NodeResult) -> u64);
    const COUNTERS: [Counter; 5] = [
        ("received", |r| r.received),
        ("duplicates", |r| r.duplicates),
        ("router duplicates", |r| r.router_duplicates.unwrap_or(0)),
        ("bytes in", |r| r.bytes_in.unwrap_or(0)),
        ("bytes out", |r| r.bytes_out.unwrap_or(0)),
    ];
    COUNTERS
        .iter()
        .filter_map(|&(name, get)| {
            let total = results
                .iter()
                .try_fold(0u64, |t, (_, r)| t.checked_add(get(r)));
            if total.is_some() {
                return None;
            }
            let &(i, r) = results.iter().max_by_key(|(_, r)| get(r))?;
            Some((
                i,
                format!(
                    "node {i} reports {name} {}: with the other nodes' that is more than a 64-bit counter holds",
                    get(r)
                ),
            ))
        })
        .collect()
}

/// Node `i` claims more messages than its acks counted, or a sequence number no command
/// asked for.
fn publish_problem(i: u32, r: &NodeResult, bound: PublishBound) -> Option<String> {
    let claimed = r.published.len() as u64;
    if claimed > bound.acknowledged {
        return Some(format!(
            "node {i} reports {claimed} messages published, but its acks count {} (of {} asked)",
            bound.acknowledged, bound.asked
        ));
    }
    let seq = r
        .published
        .iter()
        .map(|p| p.seq)
        .find(|&s| s >= bound.asked)?;
    Some(format!(
        "node {i} reports publishing message {seq}, but was asked for {} messages",
        bound.asked
    ))
}

/// The first impossibility of node `i`'s seen-set, if any.
fn seen_problem(
    i: u32,
    r: &NodeResult,
    fleet: u32,
    published: &HashMap<u32, Option<u64>>,
) -> Option<String> {
    let mut total: u64 = 0;
    for s in &r.seen {
        if s.origin >= fleet {
            return Some(format!(
                "node {i} reports messages from node {}, but the run has {fleet} nodes",
                s.origin
            ));
        }
        for &[lo, hi] in &s.ranges {
            if lo > hi {
                return Some(format!(
                    "node {i} reports a seen range {lo}..{hi} from node {} that runs backwards",
                    s.origin
                ));
            }
            match published.get(&s.origin).copied().flatten() {
                None => {
                    return Some(format!(
                        "node {i} reports seeing message {hi} from node {}, which published nothing",
                        s.origin
                    ));
                }
                Some(max) if hi > max => {
                    return Some(format!(
                        "node {i} reports seeing message {hi} from node {}, which published up to {max}",
                        s.origin
                    ));
                }
                Some(_) => {}
            }
            let Some(t) = (hi - lo).checked_add(1).and_then(|n| total.checked_add(n)) else {
                return Some(format!(
                    "node {i} reports more seen messages than a 64-bit counter holds"
                ));
            };
            total = t;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use testbed_contract::results::{OriginLatency, Published, SeenFrom};

    /// Node i was asked for (and acknowledged) `asked[i]` messages.
    fn bounds(asked: &[u64]) -> HashMap<u32, PublishBound> {
        asked
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let b = PublishBound {
                    asked: n,
                    acknowledged: n,
                };
                (i as u32, b)
            })
            .collect()
    }

    fn result(index: u32, published: u64, seen: Vec<SeenFrom>) -> NodeResult {
        let mut r: NodeResult = serde_json::from_value(serde_json::json!({
            "index": index, "peer_id": "p", "exit": "finished", "latency": [],
            "published": [], "seen": [], "subscriptions": [], "received": 0,
            "duplicates": 0, "peak_rss_bytes": 0, "final_rss_bytes": 0, "cpu_ns": 0,
            "timeline": [],
        }))
        .unwrap();
        r.published = (0..published)
            .map(|seq| Published {
                seq,
                topic: "t".into(),
                at_ns: 1,
                due_ns: None,
            })
            .collect();
        r.seen = seen;
        r
    }

    #[test]
    fn honest_results_have_no_anomaly() {
        let a = result(
            0,
            3,
            vec![SeenFrom {
                origin: 1,
                ranges: vec![[0, 1]],
            }],
        );
        let b = result(
            1,
            2,
            vec![SeenFrom {
                origin: 0,
                ranges: vec![[0, 2]],
            }],
        );
        assert!(anomalies(&[(0, &a), (1, &b)], &bounds(&[3, 2]), 2).is_empty());
    }

    #[test]
    fn each_impossibility_is_named_for_its_node() {
        let mut a = result(
            0,
            3,
            vec![SeenFrom {
                origin: 1,
                ranges: vec![[0, u64::MAX]],
            }],
        );
        a.latency = vec![OriginLatency {
            origin_group: 0,
            hdr: "not a histogram".into(),
        }];
        let b = result(
            1,
            2,
            vec![SeenFrom {
                origin: 7,
                ranges: vec![[0, 0]],
            }],
        );
        let c = result(
            2,
            2,
            vec![SeenFrom {
                origin: 0,
                ranges: vec![[2, 1]],
            }],
        );
        let found = anomalies(&[(0, &a), (1, &b), (2, &c)], &bounds(&[3, 2, 2]), 3);
        let text = |i: u32| {
            found
                .iter()
                .filter(|(n, _)| *n == i)
                .map(|(_, w)| w.clone())
                .collect::<Vec<_>>()
                .join("; ")
        };
        assert!(text(0).contains("does not decode"), "{found:?}");
        assert!(text(0).contains("published up to 1"), "{found:?}");
        assert!(text(1).contains("run has 3 nodes"), "{found:?}");
        assert!(text(2).contains("backwards"), "{found:?}");
    }

    #[test]
    fn a_bound_counts_what_acks_say_and_unacknowledged_commands_whole() {
        let b =
            PublishBound::from_commands([(10, Some(10)), (5, Some(2)), (7, None), (3, Some(9))]);
        assert_eq!(b.asked, 25);
        assert_eq!(b.acknowledged, 10 + 2 + 7 + 3);
        assert_eq!(PublishBound::from_commands([]), PublishBound::default());
    }

    #[test]
    fn publishes_beyond_what_was_asked_or_acknowledged_are_named() {
        let bound = |asked, acknowledged| PublishBound {
            asked,
            acknowledged,
        };
        // One message more than the acks counted.
        let a = result(0, 11, vec![]);
        // As many as asked, but with a sequence number past what the commands asked for.
        let mut b = result(1, 3, vec![]);
        b.published[2].seq = 5;
        // Asked nothing, claims one.
        let c = result(2, 1, vec![]);
        // Claims what the acks counted: no anomaly.
        let d = result(3, 10, vec![]);
        let bounds = HashMap::from([(0, bound(20, 10)), (1, bound(3, 3)), (3, bound(10, 10))]);
        let found = anomalies(&[(0, &a), (1, &b), (2, &c), (3, &d)], &bounds, 4);
        let of = |i: u32| found.iter().filter(|(n, _)| *n == i).count();
        assert_eq!((of(0), of(1), of(2), of(3)), (1, 1, 1, 0), "{found:?}");
        assert!(
            found[0].1.contains("acks count 10 (of 20 asked)"),
            "{found:?}"
        );
        assert!(found[1].1.contains("message 5"), "{found:?}");
    }

    #[test]
    fn seen_messages_of_an_origin_without_a_result_stay_within_what_it_was_asked() {
        // Node 1 sent no result (crashed) after being asked for 4 messages; node 2 was never
        // asked to publish.
        let seen = |origin, hi| SeenFrom {
            origin,
            ranges: vec![[0, hi]],
        };
        let ok = result(0, 0, vec![seen(1, 3)]);
        let past = result(3, 0, vec![seen(1, 4)]);
        let never = result(4, 0, vec![seen(2, 0)]);
        let bounds = bounds(&[0, 4]);
        let found = anomalies(&[(0, &ok), (3, &past), (4, &never)], &bounds, 5);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].1.contains("published up to 3"), "{found:?}");
        assert!(found[1].1.contains("published nothing"), "{found:?}");
    }

    #[test]
    fn counters_past_what_the_others_published_or_a_64_bit_total_are_named() {
        // Node 0 received 6 messages, but nodes 1 and 2 were asked for 5 in all.
        let mut a = result(0, 0, vec![]);
        a.received = 6;
        // Node 1's duplicates and node 2's make a total past u64::MAX: the larger is named.
        let mut b = result(1, 2, vec![]);
        b.duplicates = u64::MAX - 1;
        let mut c = result(2, 3, vec![]);
        c.duplicates = 2;
        let found = anomalies(&[(0, &a), (1, &b), (2, &c)], &bounds(&[0, 2, 3]), 3);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found
                .iter()
                .any(|(n, w)| *n == 1 && w.contains("duplicates")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(n, w)| *n == 0 && w.contains("6 messages received") && w.contains("for 5")),
            "{found:?}"
        );
        // As many as the others were asked for is possible.
        a.received = 5;
        c.duplicates = 1;
        assert!(anomalies(&[(0, &a), (1, &b), (2, &c)], &bounds(&[0, 2, 3]), 3).is_empty());
    }
}
