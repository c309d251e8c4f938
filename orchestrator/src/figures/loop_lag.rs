//! Each node's event-loop lag (how late its loop got to its own probe timer, as the node
//! reports it in its result's `loop_lag`) and the fleet's spread of it: each node's p99 over
//! its run, and its largest lag in the measurement window, found from the per-second maxima.
//! The definition is in docs/report-format.md ("Event-loop lag").

use crate::record::NodeRecord;
use crate::record::sections::{LagSpread, LoopLagSection, NodeLoopLag};
use testbed_contract::histogram;
use testbed_contract::results::LoopLag;

/// The measurement window on the wall clock the nodes stamp (ns since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_unix_ns: u64,
    pub to_unix_ns: u64,
}

/// The section, or None when no node reported its loop lag. `window` None: nothing was
/// published, the window is the whole run.
pub fn section(nodes: &[NodeRecord], window: Option<Window>) -> Option<LoopLagSection> {
    let mut measured = Vec::new();
    let mut not_measured = Vec::new();
    let mut interval_ms = 0;
    for n in nodes {
        match n.result.as_ref().and_then(|r| r.loop_lag.as_ref()) {
            Some(l) => match of_node(n, l, window) {
                Some(figures) => {
                    interval_ms = interval_ms.max(l.interval_ms);
                    measured.push(figures);
                }
                None => not_measured.push(n.index),
            },
            None => not_measured.push(n.index),
        }
    }
    let worst = measured
        .iter()
        .max_by(|a, b| {
            let key = |n: &NodeLoopLag| n.window_max_ms.unwrap_or(-1.0);
            key(a)
                .total_cmp(&key(b))
                .then(a.max_ms.total_cmp(&b.max_ms))
        })?
        .clone();
    let node_window_max = spread(measured.iter().filter_map(|n| n.window_max_ms));
    Some(LoopLagSection {
        interval_ms,
        window: if window.is_some() {
            "publish_to_settle"
        } else {
            "whole_run"
        }
        .into(),
        nodes_measured: measured.len() as u32,
        not_measured,
        node_p99: spread(measured.iter().map(|n| n.p99_ms))?,
        node_window_max,
        worst,
        nodes: measured,
    })
}

/// One node's figures; None when its histogram does not decode or holds no tick.
fn of_node(n: &NodeRecord, l: &LoopLag, window: Option<Window>) -> Option<NodeLoopLag> {
    let h = histogram::decode(&l.hdr).ok().filter(|h| !h.is_empty())?;
    let ms = |us: u64| us as f64 / 1e3;
    // Seconds [s, s + 1) that overlap [from, to); the whole series without a window.
    let in_window = |s: u64| {
        window.is_none_or(|w| {
            s.saturating_add(1).saturating_mul(1_000_000_000) > w.from_unix_ns
                && s.saturating_mul(1_000_000_000) < w.to_unix_ns
        })
    };
    let window_max_ms = (l.start_unix_s..)
        .zip(&l.max_us)
        .filter(|&(s, _)| in_window(s))
        .map(|(_, &us)| us)
        .max()
        .map(|us| ms(u64::from(us)));
    Some(NodeLoopLag {
        index: n.index,
        group: n.group.clone(),
        ticks: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
        window_max_ms,
    })
}

/// Nearest-rank p50 and p99 and the max of per-node values; None without values.
fn spread(values: impl Iterator<Item = f64>) -> Option<LagSpread> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(LagSpread {
        nodes: v.len() as u32,
        p50_ms: rank(0.50),
        p99_ms: rank(0.99),
        max_ms: v[v.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_760_000_000;

    /// A node whose ticks were late by `lags_us`, with per-second maxima `max_us` from `S`.
    fn node(index: u32, lags_us: &[u64], max_us: &[u32]) -> NodeRecord {
        let mut h = histogram::new_latency_histogram();
        for &v in lags_us {
            h.record(v).unwrap();
        }
        let mut n: NodeRecord = serde_json::from_value(serde_json::json!({
            "index": index, "group": "g", "implementation": "rust", "listen_addrs": [],
            "status": "ok", "last_state": "done", "log": "", "timeline": [],
            "result": {
                "index": index, "peer_id": "p", "exit": "finished", "latency": [],
                "published": [], "seen": [], "subscriptions": [], "received": 0,
                "duplicates": 0, "peak_rss_bytes": 0, "final_rss_bytes": 0,
                "cpu_ns": 0, "timeline": []
            }
        }))
        .unwrap();
        if !lags_us.is_empty() {
            n.result.as_mut().unwrap().loop_lag = Some(LoopLag {
                interval_ms: 100,
                hdr: histogram::encode(&h).unwrap(),
                start_unix_s: S,
                max_us: max_us.to_vec(),
            });
        }
        n
    }

    #[test]
    fn the_worst_node_is_the_one_with_the_largest_lag_in_the_window() {
        let nodes = [
            // Its largest lag (900 ms) was before the window (second S).
            node(0, &[100, 100, 900_000], &[900_000, 200, 100, 100]),
            node(1, &[100, 200, 300, 400_000], &[100, 200, 400_000, 300]),
            node(2, &[50, 60, 70], &[50, 60, 70, 0]),
            // A Go or JS node: no figure.
            node(3, &[], &[]),
        ];
        // Window: S + 1.5 s to S + 3.2 s: seconds S + 1, S + 2, S + 3.
        let w = Window {
            from_unix_ns: (S + 1) * 1_000_000_000 + 500_000_000,
            to_unix_ns: (S + 3) * 1_000_000_000 + 200_000_000,
        };
        let s = section(&nodes, Some(w)).unwrap();
        assert_eq!(
            (s.interval_ms, s.window.as_str()),
            (100, "publish_to_settle")
        );
        assert_eq!((s.nodes_measured, s.not_measured.clone()), (3, vec![3]));
        assert_eq!(s.worst.index, 1);
        assert_eq!(s.worst.window_max_ms, Some(400.0));
        let by_index: Vec<Option<f64>> = s.nodes.iter().map(|n| n.window_max_ms).collect();
        assert_eq!(by_index, vec![Some(0.2), Some(400.0), Some(0.07)]);
        let n0 = &s.nodes[0];
        assert_eq!(n0.ticks, 3);
        assert!((n0.max_ms - 900.0).abs() < 1.0, "{n0:?}");
        let wm = s.node_window_max.unwrap();
        assert_eq!((wm.nodes, wm.p50_ms, wm.max_ms), (3, 0.2, 400.0));
        assert_eq!(s.node_p99.nodes, 3);
        assert!((s.node_p99.max_ms - 900.0).abs() < 1.0, "{:?}", s.node_p99);

        // Without a window (nothing published) the whole run counts: node 0 is the worst.
        let s = section(&nodes, None).unwrap();
        assert_eq!((s.worst.index, s.window.as_str()), (0, "whole_run"));
        assert_eq!(s.worst.window_max_ms, Some(900.0));
    }

    #[test]
    fn no_section_when_nobody_measured_it() {
        assert_eq!(section(&[node(0, &[], &[])], None), None);
        assert_eq!(section(&[], None), None);
    }

    #[test]
    fn spread_is_nearest_rank() {
        let s = spread([5.0, 1.0, 3.0, 2.0, 4.0].into_iter()).unwrap();
        assert_eq!((s.nodes, s.p50_ms, s.p99_ms, s.max_ms), (5, 3.0, 5.0, 5.0));
        assert_eq!(spread(std::iter::empty()), None);
    }
}
