//! How far behind its schedule each publisher group sent (send − due), and the latency seen
//! from send time beside the latency from the due time, so a publisher that fell behind shows
//! in its own figure and is not hidden from the latency (coordinated omission).

use super::summary::latency_of;
use crate::record::{NodeRecord, PublishLag, Summary};
use std::collections::BTreeMap;
use testbed_contract::histogram;

/// Fills the summary's publisher lag per group, the latency since send and how many
/// messages had a due time (paced publishing; back to back, due = send).
pub fn add_to(s: &mut Summary, nodes: &[NodeRecord]) {
    let mut lag: BTreeMap<&str, (u32, hdrhistogram::Histogram<u64>)> = BTreeMap::new();
    let mut since_send = histogram::new_latency_histogram();
    for n in nodes {
        let Some(r) = &n.result else { continue };
        s.paced_messages += r.published.iter().filter(|p| p.due_ns.is_some()).count() as u64;
        if let Some(h) = r
            .publish_lag
            .as_deref()
            .and_then(|t| histogram::decode(t).ok())
        {
            let e = lag
                .entry(n.group.as_str())
                .or_insert_with(|| (0, histogram::new_latency_histogram()));
            e.0 += 1;
            let _ = e.1.add(&h);
        }
        for l in &r.latency_since_send {
            if let Ok(h) = histogram::decode(&l.hdr) {
                let _ = since_send.add(&h);
            }
        }
    }
    s.publish_lag = lag
        .into_iter()
        .filter_map(|(group, (publishers, h))| {
            let l = latency_of(&h)?;
            Some(PublishLag {
                group: group.to_string(),
                publishers,
                messages: l.count,
                p50_ms: l.p50_ms,
                p99_ms: l.p99_ms,
                max_ms: l.max_ms,
            })
        })
        .collect();
    s.latency_since_send = latency_of(&since_send);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NodeStatus;
    use testbed_contract::results::{NodeResult, NodeState, Published};

    fn publisher(index: u32, group: &str, lags_us: &[u64]) -> NodeRecord {
        let mut h = histogram::new_latency_histogram();
        for &v in lags_us {
            h.record(v).unwrap();
        }
        NodeRecord {
            index,
            group: group.into(),
            implementation: "rust".into(),
            pid: None,
            peer_id: None,
            listen_addrs: vec![],
            status: NodeStatus::Ok,
            failure: None,
            failed_at: None,
            exit_code: None,
            exit_signal: None,
            last_state: NodeState::Ready,
            log: String::new(),
            mesh_ms: None,
            meshed: None,
            timeline: vec![],
            last_snapshot: None,
            result: Some(NodeResult {
                published: lags_us
                    .iter()
                    .enumerate()
                    .map(|(i, lag)| Published {
                        seq: i as u64,
                        topic: "t".into(),
                        at_ns: 1_000 + lag * 1_000,
                        due_ns: Some(1_000),
                    })
                    .collect(),
                publish_lag: Some(histogram::encode(&h).unwrap()),
                ..serde_json::from_value(serde_json::json!({
                    "index": index, "peer_id": "p", "exit": "finished", "latency": [],
                    "published": [], "seen": [], "subscriptions": [], "received": 0,
                    "duplicates": 0, "peak_rss_bytes": 0, "final_rss_bytes": 0,
                    "cpu_ns": 0, "timeline": []
                }))
                .unwrap()
            }),
            finish_info: None,
            outside: None,
        }
    }

    #[test]
    fn lag_is_merged_per_publisher_group() {
        let nodes = [
            publisher(0, "a", &[0, 0, 0, 2_000]),
            publisher(1, "a", &[0, 0, 0, 0]),
            publisher(2, "b", &[500_000]),
        ];
        let mut s = Summary::default();
        add_to(&mut s, &nodes);
        assert_eq!(s.paced_messages, 9);
        assert_eq!(s.publish_lag.len(), 2);
        let a = &s.publish_lag[0];
        assert_eq!((a.group.as_str(), a.publishers, a.messages), ("a", 2, 8));
        assert_eq!(a.p50_ms, 0.0);
        assert!((a.max_ms - 2.0).abs() < 0.01, "{a:?}");
        let b = &s.publish_lag[1];
        assert!((b.max_ms - 500.0).abs() < 1.0, "{b:?}");
    }
}
