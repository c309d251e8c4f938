//! The fleet's figures from the nodes' final results. Deliveries are counted exactly from
//! seen-sets against what was published while each receiver was subscribed; latency
//! percentiles come from the merged HDR histograms (exact across the fleet to the
//! histogram's 3 significant digits).

use crate::record::{DeliveryBucket, Dist, GroupPair, Latency, NodeRecord, NodeStatus, Summary};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use testbed_contract::histogram;
use testbed_contract::results::{NodeResult, SeenFrom, Subscription};

/// The figures that depend only on the node records.
pub fn summarize(nodes: &[NodeRecord], group_names: &[String]) -> (Summary, Vec<GroupPair>) {
    let mut s = Summary {
        nodes: nodes.len() as u32,
        nodes_failed: nodes
            .iter()
            .filter(|n| {
                matches!(
                    n.status,
                    NodeStatus::Crashed | NodeStatus::Hung | NodeStatus::Failed
                )
            })
            .count() as u32,
        nodes_without_result: nodes.iter().filter(|n| n.result.is_none()).count() as u32,
        ..Summary::default()
    };
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
    let results: Vec<(&NodeRecord, &NodeResult)> = nodes
        .iter()
        .filter_map(|n| Some((n, n.result.as_ref()?)))
        .collect();

    // Published messages and their publish windows.
    let mut first_pub = u64::MAX;
    let mut last_pub = 0u64;
    for (_, r) in &results {
        s.messages_published += r.published.len() as u64;
        for p in &r.published {
            first_pub = first_pub.min(p.at_ns);
            last_pub = last_pub.max(p.at_ns);
        }
    }
    // N sends span N − 1 intervals: N / (last − first) would overstate by N / (N − 1).
    if s.messages_published > 1 && last_pub > first_pub {
        s.publish_rate_per_s =
            Some((s.messages_published - 1) as f64 / ((last_pub - first_pub) as f64 / 1e9));
    }

    // Expected vs delivered, overall and per (origin group, receiver group).
    let ng = group_names.len();
    let mut pair_counts = vec![(0u64, 0u64); ng * ng];
    let mut total_seen = 0u64;
    for (rn, r) in &results {
        let seen = SeenIndex::new(&r.seen);
        total_seen += seen.total;
        let rg = group_of(rn);
        for (on, o) in &results {
            if on.index == rn.index {
                continue;
            }
            let og = group_of(on);
            for p in &o.published {
                if subscribed_at(&r.subscriptions, &p.topic, p.at_ns) {
                    let hit = seen.contains(on.index, p.seq);
                    s.expected_deliveries += 1;
                    s.delivered += u64::from(hit);
                    if rg < ng && og < ng {
                        let c = &mut pair_counts[og * ng + rg];
                        c.0 += 1;
                        c.1 += u64::from(hit);
                    }
                }
            }
        }
    }
    s.unexpected_deliveries = total_seen.saturating_sub(s.delivered);
    s.delivery_ratio =
        (s.expected_deliveries > 0).then(|| s.delivered as f64 / s.expected_deliveries as f64);

    // Latency: all, and per group pair.
    let mut all = histogram::new_latency_histogram();
    let mut per_pair: HashMap<(usize, usize), Histogram<u64>> = HashMap::new();
    for (rn, r) in &results {
        for l in &r.latency {
            let Ok(h) = histogram::decode(&l.hdr) else {
                continue;
            };
            let _ = all.add(&h);
            let og = l.origin_group as usize;
            if og < ng {
                let _ = per_pair
                    .entry((og, group_of(rn)))
                    .or_insert_with(histogram::new_latency_histogram)
                    .add(&h);
            }
        }
    }
    s.latency = latency_of(&all);

    s.duplicates = results.iter().map(|(_, r)| r.duplicates).sum();
    let router: Vec<u64> = results
        .iter()
        .filter_map(|(_, r)| r.router_duplicates)
        .collect();
    if !router.is_empty() {
        let sum: u64 = router.iter().sum();
        s.router_duplicates = Some(sum);
        if s.delivered > 0 {
            s.router_duplicates_per_delivery = Some(sum as f64 / s.delivered as f64);
        }
    }
    let bytes_in: Vec<u64> = results.iter().filter_map(|(_, r)| r.bytes_in).collect();
    let bytes_out: Vec<u64> = results.iter().filter_map(|(_, r)| r.bytes_out).collect();
    s.bytes_in = (!bytes_in.is_empty()).then(|| bytes_in.iter().sum());
    s.bytes_out = (!bytes_out.is_empty()).then(|| bytes_out.iter().sum());

    resource_figures(&mut s, nodes);
    mesh_figures(&mut s, nodes);

    let mut pairs = Vec::new();
    for og in 0..ng {
        for rg in 0..ng {
            let (expected, delivered) = pair_counts[og * ng + rg];
            let latency = per_pair.get(&(og, rg)).and_then(latency_of);
            if expected > 0 || latency.is_some() {
                pairs.push(GroupPair {
                    origin_group: group_names[og].clone(),
                    receiver_group: group_names[rg].clone(),
                    expected,
                    delivered,
                    latency,
                });
            }
        }
    }
    (s, pairs)
}

/// Memory and CPU per node: from the result, else (a crashed node still counts) the
/// orchestrator's own samples of its process, else its last snapshot.
fn resource_figures(s: &mut Summary, nodes: &[NodeRecord]) {
    s.peak_rss_bytes = dist(nodes.iter().filter_map(|n| {
        n.result
            .as_ref()
            .map(|r| r.peak_rss_bytes as f64)
            .or_else(|| n.outside.as_ref().map(|o| o.peak_rss_bytes as f64))
            .or_else(|| n.last_snapshot.as_ref().map(|s| s.rss_bytes as f64))
    }));
    s.cpu_s = dist(nodes.iter().filter_map(|n| {
        n.result
            .as_ref()
            .map(|r| r.cpu_ns as f64 / 1e9)
            .or_else(|| n.outside.as_ref().map(|o| o.cpu_s))
            .or_else(|| n.last_snapshot.as_ref().map(|s| s.cpu_ns as f64 / 1e9))
    }));
}

/// Time to mesh over the truly meshed nodes only, and who went ahead without a mesh.
fn mesh_figures(s: &mut Summary, nodes: &[NodeRecord]) {
    let mut times = Vec::new();
    for n in nodes {
        match n.meshed {
            Some(true) => {
                s.meshed_nodes += 1;
                times.extend(n.mesh_ms);
            }
            Some(false) => s.not_meshed.push(n.index),
            None if n.mesh_ms.is_some() => s.mesh_unknown += 1,
            None => {}
        }
    }
    s.time_to_mesh_ms = (!times.is_empty()).then(|| dist(times.into_iter()));
}

/// Expected and delivered pairs by publish time, in seconds since the run started, so a
/// partition or a churn burst shows as a dip. At most 60 buckets of whole seconds. The plain
/// rule (a receiver subscribed when the message was published); under churn the caller
/// passes the window rule's per-message counts to [`bucket_over_time`] instead.
pub fn delivery_over_time(nodes: &[NodeRecord], start_ns: u64) -> Vec<DeliveryBucket> {
    let results: Vec<(&NodeRecord, &NodeResult)> = nodes
        .iter()
        .filter_map(|n| Some((n, n.result.as_ref()?)))
        .collect();
    let seen: Vec<SeenIndex> = results
        .iter()
        .map(|(_, r)| SeenIndex::new(&r.seen))
        .collect();
    let mut by_message = Vec::new();
    for (on, o) in &results {
        for p in &o.published {
            let (mut expected, mut delivered) = (0u64, 0u64);
            for ((rn, r), seen) in results.iter().zip(&seen) {
                if on.index != rn.index && subscribed_at(&r.subscriptions, &p.topic, p.at_ns) {
                    expected += 1;
                    delivered += u64::from(seen.contains(on.index, p.seq));
                }
            }
            by_message.push((p.at_ns, expected, delivered));
        }
    }
    bucket_over_time(&by_message, start_ns)
}

/// Buckets per-message `(publish time ns, expected, delivered)` counts by publish time.
pub fn bucket_over_time(by_message: &[(u64, u64, u64)], start_ns: u64) -> Vec<DeliveryBucket> {
    let times = by_message.iter().map(|m| m.0);
    let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
        return Vec::new();
    };
    let span_s = (last.saturating_sub(first) as f64 / 1e9).ceil().max(1.0);
    let width = (span_s / 60.0).ceil().max(1.0);
    let origin = start_ns.min(first);
    let bucket_of = |at: u64| ((at.saturating_sub(origin) as f64 / 1e9) / width).floor() as usize;
    let mut buckets: Vec<(u64, u64)> = vec![(0, 0); bucket_of(last) + 1];
    for &(at, expected, delivered) in by_message {
        let b = &mut buckets[bucket_of(at)];
        b.0 += expected;
        b.1 += delivered;
    }
    buckets
        .into_iter()
        .enumerate()
        .filter(|(_, (e, _))| *e > 0)
        .map(|(i, (expected, delivered))| DeliveryBucket {
            from_s: i as f64 * width,
            to_s: (i + 1) as f64 * width,
            expected,
            delivered,
        })
        .collect()
}

pub fn latency_of(h: &Histogram<u64>) -> Option<Latency> {
    if h.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1e3;
    Some(Latency {
        count: h.len(),
        min_ms: ms(h.min()),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1e3,
    })
}

/// Exact order statistics of a sample (median of an even count is the mean of the middle two).
pub fn dist(values: impl Iterator<Item = f64>) -> Dist {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Dist::default();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let total: f64 = v.iter().sum();
    Dist {
        count: n as u64,
        min: v[0],
        median,
        max: v[n - 1],
        mean: total / n as f64,
        total,
    }
}

pub(crate) fn subscribed_at(subs: &[Subscription], topic: &str, at_ns: u64) -> bool {
    subs.iter()
        .any(|s| s.topic == topic && s.from_ns <= at_ns && s.to_ns.is_none_or(|to| at_ns < to))
}

/// The delivery window (churn): subscribed to `topic` by one span for the whole of
/// `[from_ns, to_ns]`, where every span ends at `until_ns` at the latest (the node stopped
/// taking part then), and the window itself ends by `until_ns`.
pub(crate) fn subscribed_through(
    subs: &[Subscription],
    topic: &str,
    from_ns: u64,
    to_ns: u64,
    until_ns: u64,
) -> bool {
    to_ns <= until_ns
        && subs.iter().any(|s| {
            s.topic == topic
                && s.from_ns <= from_ns
                && s.to_ns.map_or(until_ns, |t| t.min(until_ns)) >= to_ns
        })
}

/// Seen-set lookup: per origin, sorted inclusive ranges.
pub(crate) struct SeenIndex<'a> {
    by_origin: HashMap<u32, &'a [[u64; 2]]>,
    pub(crate) total: u64,
}

impl<'a> SeenIndex<'a> {
    pub(crate) fn new(seen: &'a [SeenFrom]) -> Self {
        let mut total = 0;
        let by_origin = seen
            .iter()
            .map(|s| {
                // Saturating: a range of 2^64 messages must not wrap to 0 (the node data
                // checks name such a node; the figure stays an upper bound).
                total = s.ranges.iter().fold(total, |t: u64, r| {
                    t.saturating_add(r[1].saturating_sub(r[0]).saturating_add(1))
                });
                (s.origin, s.ranges.as_slice())
            })
            .collect();
        SeenIndex { by_origin, total }
    }

    pub(crate) fn contains(&self, origin: u32, seq: u64) -> bool {
        let Some(ranges) = self.by_origin.get(&origin) else {
            return false;
        };
        let i = ranges.partition_point(|r| r[1] < seq);
        ranges.get(i).is_some_and(|r| r[0] <= seq && seq <= r[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_is_exact() {
        let d = dist([4.0, 1.0, 3.0, 2.0].into_iter());
        assert_eq!(
            (d.count, d.min, d.median, d.max, d.total),
            (4, 1.0, 2.5, 4.0, 10.0)
        );
        assert_eq!(dist([5.0, 1.0, 9.0].into_iter()).median, 5.0);
    }

    #[test]
    fn seen_lookup() {
        let seen = vec![SeenFrom {
            origin: 2,
            ranges: vec![[0, 3], [7, 7], [9, 12]],
        }];
        let idx = SeenIndex::new(&seen);
        assert_eq!(idx.total, 4 + 1 + 4);
        for (seq, want) in [
            (0, true),
            (3, true),
            (4, false),
            (7, true),
            (8, false),
            (12, true),
            (13, false),
        ] {
            assert_eq!(idx.contains(2, seq), want, "seq {seq}");
        }
        assert!(!idx.contains(1, 0));
    }

    #[test]
    fn subscription_windows() {
        let subs = vec![Subscription {
            topic: "t".into(),
            from_ns: 10,
            to_ns: Some(20),
        }];
        assert!(subscribed_at(&subs, "t", 10));
        assert!(!subscribed_at(&subs, "t", 20));
        assert!(!subscribed_at(&subs, "u", 15));
    }

    #[test]
    fn delivery_windows() {
        let subs = vec![
            Subscription {
                topic: "t".into(),
                from_ns: 10,
                to_ns: Some(20),
            },
            Subscription {
                topic: "t".into(),
                from_ns: 30,
                to_ns: None,
            },
        ];
        assert!(subscribed_through(&subs, "t", 10, 20, 100));
        // Left in the middle of the window: neither expected nor a miss.
        assert!(!subscribed_through(&subs, "t", 15, 25, 100));
        // A gap between two spans breaks the window.
        assert!(!subscribed_through(&subs, "t", 18, 32, 100));
        // Open span, but the node stopped taking part before the window closed.
        assert!(subscribed_through(&subs, "t", 40, 50, 50));
        assert!(!subscribed_through(&subs, "t", 40, 50, 49));
        assert!(!subscribed_through(&subs, "u", 40, 50, 100));
    }
}
