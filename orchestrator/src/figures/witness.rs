//! The witnesses' figures: what each listen-only witness counted against what the fleet's
//! publishers recorded. A witness agrees when its seen-set holds exactly the published
//! messages and its own counter says the same number; anything else is spelled out.

use super::summary::SeenIndex;
use crate::record::NodeRecord;
use crate::record::sections::{WitnessFigures, WitnessSection};

/// The section, from the fleet's records, the witnesses' records and the fleet nodes each
/// witness dialled (`dials[k]` for the k-th witness). None without witnesses.
pub fn section(
    fleet: &[NodeRecord],
    witnesses: Vec<NodeRecord>,
    dials: &[Vec<u32>],
) -> Option<WitnessSection> {
    if witnesses.is_empty() {
        return None;
    }
    let published: Vec<(u32, u64)> = fleet
        .iter()
        .filter_map(|n| Some((n.index, n.result.as_ref()?)))
        .flat_map(|(i, r)| r.published.iter().map(move |p| (i, p.seq)))
        .collect();
    let figures = witnesses
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let peers = dials.get(k).cloned().unwrap_or_default();
            figures_of(w, &published, peers)
        })
        .collect();
    Some(WitnessSection {
        messages_published: published.len() as u64,
        witnesses: figures,
        nodes: witnesses,
    })
}

fn figures_of(w: &NodeRecord, published: &[(u32, u64)], peers: Vec<u32>) -> WitnessFigures {
    let total = published.len() as u64;
    let mut f = WitnessFigures {
        index: w.index,
        implementation: w.implementation.clone(),
        peers,
        distinct: None,
        received: None,
        deliveries: None,
        missing: total,
        unknown: 0,
        agrees: false,
        verdict: String::new(),
    };
    let Some(r) = &w.result else {
        let status = format!("{:?}", w.status).to_lowercase();
        let why = w
            .failure
            .as_ref()
            .map_or(String::new(), |e| format!(": {e}"));
        f.verdict = format!("no result ({status}{why}): nothing to compare");
        return f;
    };
    let seen = SeenIndex::new(&r.seen);
    let missed: Vec<&(u32, u64)> = published
        .iter()
        .filter(|(o, s)| !seen.contains(*o, *s))
        .collect();
    f.missing = missed.len() as u64;
    let got = total - f.missing;
    f.unknown = seen.total.saturating_sub(got);
    f.distinct = Some(seen.total);
    f.received = Some(r.received);
    f.deliveries = Some(r.received.saturating_add(r.duplicates));
    f.agrees = f.missing == 0 && f.unknown == 0 && r.received == seen.total;
    f.verdict = if f.agrees {
        format!(
            "agrees: {} distinct messages, every one published",
            seen.total
        )
    } else {
        let mut parts = Vec::new();
        if let Some((o, s)) = missed.first() {
            parts.push(format!(
                "{} published message(s) never received (the first: node {o}'s message {s})",
                f.missing
            ));
        }
        if f.unknown > 0 {
            parts.push(format!("{} received that no publisher recorded", f.unknown));
        }
        if r.received != seen.total {
            parts.push(format!(
                "its own count ({}) differs from its seen-set ({})",
                r.received, seen.total
            ));
        }
        format!("disagrees: {}", parts.join("; "))
    };
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use testbed_contract::results::SeenFrom;

    /// A finished node's record, built from its wire form (optional fields left out).
    fn record(index: u32, published: &[u64], seen: Vec<SeenFrom>, received: u64) -> NodeRecord {
        let published: Vec<_> = published
            .iter()
            .map(|&seq| json!({"seq": seq, "topic": "t", "at_ns": 1}))
            .collect();
        let result = json!({
            "index": index, "peer_id": "", "exit": "finished", "latency": [],
            "published": published, "seen": seen, "subscriptions": [],
            "received": received, "duplicates": 1, "peak_rss_bytes": 0,
            "final_rss_bytes": 0, "cpu_ns": 0, "timeline": [],
        });
        serde_json::from_value(json!({
            "index": index, "group": "g", "implementation": "rust", "listen_addrs": [],
            "status": "ok", "last_state": "done", "log": "", "timeline": [], "result": result,
        }))
        .unwrap()
    }

    fn seen(origin: u32, lo: u64, hi: u64) -> SeenFrom {
        SeenFrom {
            origin,
            ranges: vec![[lo, hi]],
        }
    }

    #[test]
    fn a_witness_agrees_only_with_exactly_the_published_messages() {
        let fleet = [record(0, &[0, 1, 2], vec![], 0), record(1, &[0], vec![], 0)];
        let all = record(2, &[], vec![seen(0, 0, 2), seen(1, 0, 0)], 4);
        let short = record(3, &[], vec![seen(0, 0, 1), seen(1, 0, 0)], 3);
        let extra = record(4, &[], vec![seen(0, 0, 3), seen(1, 0, 0)], 5);
        let dials = vec![vec![0], vec![1], vec![0, 1]];
        let s = section(&fleet, vec![all, short, extra], &dials).unwrap();
        assert_eq!(s.messages_published, 4);
        let [a, b, c] = &s.witnesses[..] else {
            panic!("three witnesses")
        };
        assert!(a.agrees, "{}", a.verdict);
        assert_eq!((a.distinct, a.deliveries), (Some(4), Some(5)));
        assert!(!b.agrees && b.missing == 1, "{}", b.verdict);
        assert!(b.verdict.contains("node 0's message 2"), "{}", b.verdict);
        assert!(
            !c.agrees && c.unknown == 1 && c.missing == 0,
            "{}",
            c.verdict
        );
        assert_eq!(c.peers, vec![0, 1]);
        assert!(section(&fleet, vec![], &dials).is_none());
    }

    #[test]
    fn a_witness_whose_counter_differs_from_its_seen_set_disagrees() {
        let fleet = [record(0, &[0, 1], vec![], 0)];
        let w = record(1, &[], vec![seen(0, 0, 1)], 3);
        let s = section(&fleet, vec![w], &[vec![0]]).unwrap();
        assert!(!s.witnesses[0].agrees);
        assert!(s.witnesses[0].verdict.contains("own count (3)"));
    }
}
