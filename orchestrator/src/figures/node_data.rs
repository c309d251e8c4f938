//! Checks of what nodes report before any figure trusts it: histograms that do not decode,
//! seen-sets that are impossible (a range running backwards, more messages than a counter
//! holds, messages from an origin outside the fleet or beyond what that origin published).
//! Each problem is an anomaly of the node that reported it; the run then fails naming it
//! instead of reporting a silently smaller or wrapped figure.

use std::collections::HashMap;
use testbed_contract::histogram;
use testbed_contract::results::NodeResult;

/// Every problem of every result, as (node index, reason). `results` are the results that
/// arrived, with the node each came from; `fleet` is the number of nodes the run had.
pub fn anomalies(results: &[(u32, &NodeResult)], fleet: u32) -> Vec<(u32, String)> {
    // The highest sequence number each origin says it published.
    let published: HashMap<u32, u64> = results
        .iter()
        .filter_map(|(i, r)| Some((*i, r.published.iter().map(|p| p.seq).max()?)))
        .collect();
    let mut out = Vec::new();
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
        if let Some(why) = seen_problem(i, r, fleet, &published) {
            out.push((i, why));
        }
    }
    out
}

/// The first impossibility of node `i`'s seen-set, if any.
fn seen_problem(
    i: u32,
    r: &NodeResult,
    fleet: u32,
    published: &HashMap<u32, u64>,
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
            if let Some(&max) = published.get(&s.origin)
                && hi > max
            {
                return Some(format!(
                    "node {i} reports seeing message {hi} from node {}, which published up to {max}",
                    s.origin
                ));
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
        assert!(anomalies(&[(0, &a), (1, &b)], 2).is_empty());
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
        let found = anomalies(&[(0, &a), (1, &b), (2, &c)], 3);
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
}
