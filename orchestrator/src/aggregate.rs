//! Where the numbers are computed: fleet figures from the nodes' final results. Deliveries
//! are counted exactly from seen-sets against what was published while each receiver was
//! subscribed; latency percentiles come from the merged HDR histograms (exact across the
//! fleet to the histogram's 3 significant digits).

use crate::record::{
    AssertionOutcome, AxisEvent, Cut, DeliveryBucket, Dist, GroupPair, Latency, NodeRecord,
    NodeStatus, PairOverTime, ReceivedOverTime, RunRecord, Summary,
};
use crate::run::driver::DriveLog;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
use testbed_contract::histogram;
use testbed_contract::plan::{EventAction, Metric, Network, Plan};
use testbed_contract::results::{NodeResult, SeenFrom, Subscription};
use tokio::time::Instant;

/// `events_zero_unix_ns`: the wall clock when the whole fleet had been launched, time zero of
/// the timed network events and of the receive-time view.
pub fn fill(
    record: &mut RunRecord,
    plan: &Plan,
    log: &DriveLog,
    t0: Instant,
    events_zero_unix_ns: u64,
) {
    let group_names: Vec<String> = plan.groups.iter().map(|g| g.id.clone()).collect();
    let (summary, pairs) = summarize(&record.nodes, &group_names);
    record.summary = summary;
    record.group_pairs = pairs;
    // Under churn, a delivery is expected only over a whole delivery window.
    if let Some(churn) = &log.churn {
        crate::churn::accounting::apply(record, churn, &group_names);
    }
    if let Ok(start) = chrono::DateTime::parse_from_rfc3339(&record.started_at) {
        let start_ns = start.timestamp_nanos_opt().unwrap_or(0).max(0) as u64;
        record.summary.delivery_over_time = delivery_over_time(&record.nodes, start_ns);
    }
    let events = plan.network.as_ref().filter(|n| !n.events.is_empty());
    if group_names.len() > 1 || events.is_some() {
        record.summary.received_over_time =
            receive_view(record, &group_names, events, events_zero_unix_ns);
    }
    let s = &mut record.summary;
    s.launch_to_ready_ms = log
        .setup_done
        .map(|t| t.duration_since(t0).as_secs_f64() * 1e3);
    if let (Some(first), Some(end)) = (log.first_publish, log.settle_end) {
        let secs = end.duration_since(first).as_secs_f64();
        if secs > 0.0 {
            s.delivery_rate_per_s = Some(s.delivered as f64 / secs);
        }
    }
    let (cpu_s, rss) = crate::host::self_usage();
    s.orchestrator_cpu_s = cpu_s;
    s.orchestrator_peak_rss_bytes = rss;
}

/// The figures that depend only on the node records (used by `fill` and by re-rendering).
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
    if s.messages_published > 1 && last_pub > first_pub {
        s.publish_rate_per_s =
            Some(s.messages_published as f64 / ((last_pub - first_pub) as f64 / 1e9));
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

    // Resources: from the result, else the last snapshot (a crashed node still counts).
    s.peak_rss_bytes = dist(nodes.iter().filter_map(|n| {
        n.result
            .as_ref()
            .map(|r| r.peak_rss_bytes as f64)
            .or_else(|| n.last_snapshot.as_ref().map(|s| s.rss_bytes as f64))
    }));
    s.cpu_s = dist(nodes.iter().filter_map(|n| {
        n.result
            .as_ref()
            .map(|r| r.cpu_ns as f64 / 1e9)
            .or_else(|| n.last_snapshot.as_ref().map(|s| s.cpu_ns as f64 / 1e9))
    }));
    let mesh: Vec<f64> = nodes.iter().filter_map(|n| n.mesh_ms).collect();
    s.time_to_mesh_ms = (!mesh.is_empty()).then(|| dist(mesh.into_iter()));

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

/// Expected and delivered pairs by publish time, in seconds since the run started, so a
/// partition or a churn burst shows as a dip. At most 60 buckets of whole seconds.
pub fn delivery_over_time(nodes: &[NodeRecord], start_ns: u64) -> Vec<DeliveryBucket> {
    let results: Vec<(&NodeRecord, &NodeResult)> = nodes
        .iter()
        .filter_map(|n| Some((n, n.result.as_ref()?)))
        .collect();
    let times = results
        .iter()
        .flat_map(|(_, r)| r.published.iter().map(|p| p.at_ns));
    let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
        return Vec::new();
    };
    let span_s = (last.saturating_sub(first) as f64 / 1e9).ceil().max(1.0);
    let width = (span_s / 60.0).ceil().max(1.0);
    let origin = start_ns.min(first);
    let bucket_of = |at: u64| ((at.saturating_sub(origin) as f64 / 1e9) / width).floor() as usize;
    let mut buckets: Vec<(u64, u64)> = vec![(0, 0); bucket_of(last) + 1];
    for (rn, r) in &results {
        let seen = SeenIndex::new(&r.seen);
        for (on, o) in &results {
            if on.index == rn.index {
                continue;
            }
            for p in &o.published {
                if subscribed_at(&r.subscriptions, &p.topic, p.at_ns) {
                    let b = &mut buckets[bucket_of(p.at_ns)];
                    b.0 += 1;
                    b.1 += u64::from(seen.contains(on.index, p.seq));
                }
            }
        }
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

/// Most buckets of the receive-time view; a longer run gets buckets of several seconds.
const MAX_RECEIVE_BUCKETS: u64 = 600;

/// The receive-time view of a finished run, on the network events' clock: time zero is when
/// the whole fleet had been launched, `zero_unix_ns` on the wall clock.
fn receive_view(
    record: &RunRecord,
    group_names: &[String],
    network: Option<&Network>,
    zero_unix_ns: u64,
) -> Option<ReceivedOverTime> {
    let mut view = received_over_time(&record.nodes, group_names, zero_unix_ns)?;
    view.zero = "fleet_launched".into();
    if let Some(net) = network {
        let end_s = chrono::DateTime::parse_from_rfc3339(&record.finished_at)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .map(|ns| (ns as f64 - zero_unix_ns as f64) / 1e9);
        (view.events, view.cuts) = network_axis(net, end_s);
    }
    Some(view)
}

/// First deliveries by receive time per (origin group → receiver group), counted from the
/// nodes' `received_over_time` into buckets of seconds since `zero_unix_ns`. A node's second
/// `[u, u+1)` goes to the bucket holding its middle, `u + 0.5 s`, so a delivery lands at most
/// about half a second (plus the bucket width) from its true time. `None` when no node sent
/// receive-time counts.
pub fn received_over_time(
    nodes: &[NodeRecord],
    group_names: &[String],
    zero_unix_ns: u64,
) -> Option<ReceivedOverTime> {
    let ng = group_names.len();
    let group_index: HashMap<&str, usize> = group_names
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let without = nodes
        .iter()
        .filter_map(|n| n.result.as_ref())
        .filter(|r| r.received_over_time.is_empty() && r.received > 0)
        .count() as u32;
    if nodes
        .iter()
        .filter_map(|n| n.result.as_ref())
        .all(|r| r.received_over_time.is_empty())
    {
        return None;
    }
    // Walked twice (span, then counts) rather than collected: a large fleet has millions.
    let cells = || receive_cells(nodes, &group_index, ng, zero_unix_ns);
    let last_s = cells().map(|c| c.2.max(0) / 1_000_000_000).max();
    let bucket_s = last_s.map_or(1, |s| ((s as u64 + 1).div_ceil(MAX_RECEIVE_BUCKETS)).max(1));
    let width = i128::from(bucket_s) * 1_000_000_000;
    let len = last_s.map_or(0, |s| (s as u64 / bucket_s) as usize + 1);
    // Only pairs that received something get a row of counts.
    let mut counts: BTreeMap<(usize, usize), Vec<u64>> = BTreeMap::new();
    for (og, rg, mid, c) in cells() {
        // Before time zero only with a stepped clock: count it in the first bucket.
        counts.entry((og, rg)).or_insert_with(|| vec![0; len])[(mid.max(0) / width) as usize] += c;
    }
    let pairs = counts
        .into_iter()
        .map(|((og, rg), counts)| PairOverTime {
            origin_group: group_names[og].clone(),
            receiver_group: group_names[rg].clone(),
            counts,
        })
        .collect();
    Some(ReceivedOverTime {
        zero_unix_ns,
        zero: String::new(),
        bucket_s,
        pairs,
        events: Vec::new(),
        cuts: Vec::new(),
        receivers_without_counts: without,
    })
}

/// Every non-zero second of the nodes' receive-time counts as (origin group, receiver group,
/// ns after zero of the second's middle, count); groups the plan does not have are left out.
fn receive_cells<'a>(
    nodes: &'a [NodeRecord],
    group_index: &'a HashMap<&str, usize>,
    ng: usize,
    zero_unix_ns: u64,
) -> impl Iterator<Item = (usize, usize, i128, u64)> + 'a {
    nodes.iter().flat_map(move |n| {
        let rg = group_index.get(n.group.as_str()).copied();
        n.result
            .iter()
            .flat_map(|r| &r.received_over_time)
            .filter_map(move |o| {
                let og = usize::from(o.origin_group);
                Some((og, rg?, o)).filter(|_| og < ng)
            })
            .flat_map(move |(og, rg, o)| {
                let start_ns = i128::from(o.start_unix_s) * 1_000_000_000;
                o.counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(move |(i, &c)| {
                        let mid = start_ns + i as i128 * 1_000_000_000 + 500_000_000
                            - i128::from(zero_unix_ns);
                        (og, rg, mid, u64::from(c))
                    })
            })
    })
}

/// The timed events that happened before `end_s` (seconds after their time zero), and the
/// spans of the partitions they made: a partition lasts until a heal names it (or heals all).
pub fn network_axis(net: &Network, end_s: Option<f64>) -> (Vec<AxisEvent>, Vec<Cut>) {
    let mut events = Vec::new();
    let mut cuts: Vec<Cut> = Vec::new();
    for e in net.events_in_order() {
        let at_s = e.at.as_secs_f64();
        if end_s.is_some_and(|end| at_s > end) {
            break;
        }
        let (kind, what) = match e.action() {
            Some(EventAction::Partition(p)) => {
                let sides: Vec<String> = p.groups.iter().map(|s| s.join(", ")).collect();
                let name = p.name.as_ref().map_or(String::new(), |n| format!(" `{n}`"));
                cuts.push(Cut {
                    name: p.name.clone(),
                    sides: p.groups.clone(),
                    from_s: at_s,
                    to_s: None,
                });
                (
                    "partition",
                    format!("partition{name}: {}", sides.join(" | ")),
                )
            }
            Some(EventAction::Heal(h)) => {
                for c in cuts.iter_mut().filter(|c| c.to_s.is_none()) {
                    if h.partition.is_none() || h.partition == c.name {
                        c.to_s = Some(at_s);
                    }
                }
                let what = h
                    .partition
                    .as_ref()
                    .map_or("heal all".to_string(), |n| format!("heal `{n}`"));
                ("heal", what)
            }
            Some(EventAction::SetLink(l)) => {
                let arrow = if l.symmetric { "↔" } else { "→" };
                ("set_link", format!("set_link {} {arrow} {}", l.from, l.to))
            }
            None => continue,
        };
        events.push(AxisEvent {
            at_s,
            kind: kind.into(),
            what,
        });
    }
    (events, cuts)
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

fn subscribed_at(subs: &[Subscription], topic: &str, at_ns: u64) -> bool {
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
                total += s
                    .ranges
                    .iter()
                    .map(|r| r[1].saturating_sub(r[0]) + 1)
                    .sum::<u64>();
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

pub fn metric_value(metric: Metric, s: &Summary) -> Option<f64> {
    match metric {
        Metric::DeliveryRatio => s.delivery_ratio,
        Metric::LatencyP50Ms => s.latency.map(|l| l.p50_ms),
        Metric::LatencyP90Ms => s.latency.map(|l| l.p90_ms),
        Metric::LatencyP99Ms => s.latency.map(|l| l.p99_ms),
        Metric::LatencyMaxMs => s.latency.map(|l| l.max_ms),
        Metric::Duplicates => Some(s.duplicates as f64),
        Metric::FailedNodes => Some(s.nodes_failed as f64),
        Metric::ReadyTimeMs => s.launch_to_ready_ms,
        Metric::PeakRssMibMax => {
            (s.peak_rss_bytes.count > 0).then(|| s.peak_rss_bytes.max / (1024.0 * 1024.0))
        }
    }
}

pub fn check_assertions(plan: &Plan, s: &Summary) -> Vec<AssertionOutcome> {
    plan.assertions
        .iter()
        .map(|a| {
            let actual = metric_value(a.metric, s);
            AssertionOutcome {
                assertion: a.to_string(),
                actual,
                passed: actual.is_some_and(|v| a.op.holds(v, a.value)),
            }
        })
        .collect()
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

    /// A node record with a result, built from JSON so it does not depend on every field.
    fn node(index: u32, group: &str, received: u64, over_time: serde_json::Value) -> NodeRecord {
        serde_json::from_value(serde_json::json!({
            "index": index, "group": group, "implementation": "rust", "listen_addrs": [],
            "status": "ok", "last_state": "done", "log": "", "timeline": [],
            "result": {
                "index": index, "peer_id": "p", "exit": "finished", "latency": [],
                "published": [], "seen": [], "subscriptions": [], "received": received,
                "duplicates": 0, "peak_rss_bytes": 0, "final_rss_bytes": 0, "cpu_ns": 0,
                "timeline": [], "received_over_time": over_time,
            },
        }))
        .unwrap()
    }

    const S: u64 = 1_700_000_000;

    #[test]
    fn receive_counts_land_in_their_pair_and_second() {
        let groups = vec!["left".to_string(), "right".to_string()];
        let nodes = vec![
            // A left node hearing from both groups.
            node(
                0,
                "left",
                7,
                serde_json::json!([
                    { "origin_group": 0, "start_unix_s": S, "counts": [1, 2] },
                    { "origin_group": 1, "start_unix_s": S + 2, "counts": [0, 4] },
                    // An origin group the plan does not have is left out.
                    { "origin_group": 65535, "start_unix_s": S, "counts": [9] },
                ]),
            ),
            node(
                1,
                "right",
                3,
                serde_json::json!([{ "origin_group": 0, "start_unix_s": S - 1, "counts": [1, 0, 2] }]),
            ),
            // Received, but sent no counts (e.g. a Go node): skipped, and said so.
            node(2, "right", 5, serde_json::json!([])),
            // Received nothing: nothing is missing.
            node(3, "left", 0, serde_json::json!([])),
        ];
        // Time zero 0.3 s into second S: second S's middle is 0.2 s after it.
        let zero = S * 1_000_000_000 + 300_000_000;
        let v = received_over_time(&nodes, &groups, zero).unwrap();
        assert_eq!(v.zero_unix_ns, zero);
        assert_eq!(v.bucket_s, 1);
        assert_eq!(v.receivers_without_counts, 1);
        let pair = |o: &str, r: &str| {
            v.pairs
                .iter()
                .find(|p| p.origin_group == o && p.receiver_group == r)
                .map(|p| p.counts.clone())
        };
        assert_eq!(pair("left", "left"), Some(vec![1, 2, 0, 0]));
        assert_eq!(pair("right", "left"), Some(vec![0, 0, 0, 4]));
        // Second S−1 (middle 0.8 s before zero) counts in the first bucket.
        assert_eq!(pair("left", "right"), Some(vec![1, 2, 0, 0]));
        assert_eq!(pair("right", "right"), None);

        // Zero 0.7 s into second S: second S+1's middle (1.5) is 0.8 s after it → bucket 0.
        let v = received_over_time(&nodes, &groups, S * 1_000_000_000 + 700_000_000).unwrap();
        assert_eq!(v.pairs[0].counts, vec![3, 0, 0], "{:?}", v.pairs[0]);
    }

    #[test]
    fn no_receive_counts_no_view_and_long_runs_get_wider_buckets() {
        let groups = vec!["a".to_string()];
        assert!(
            received_over_time(&[node(0, "a", 5, serde_json::json!([]))], &groups, 0).is_none()
        );
        let mut counts = vec![0u32; 1001];
        counts[0] = 1;
        counts[1000] = 2;
        let nodes = [node(
            0,
            "a",
            3,
            serde_json::json!([{ "origin_group": 0, "start_unix_s": S, "counts": counts }]),
        )];
        let v = received_over_time(&nodes, &groups, S * 1_000_000_000).unwrap();
        // 1001 seconds in at most 600 buckets: 2 s each.
        assert_eq!(v.bucket_s, 2);
        assert_eq!(v.pairs[0].counts.len(), 501);
        assert_eq!(v.pairs[0].counts[0], 1);
        assert_eq!(v.pairs[0].counts[500], 2);
    }

    #[test]
    fn network_events_become_cuts_on_the_same_axis() {
        let net: Network = serde_json::from_value(serde_json::json!({
            "events": [
                { "at": "22s", "heal": "all" },
                { "at": "12s", "partition": { "name": "cut", "groups": [["left"], ["right"]] } },
                { "at": "25s", "set_link": { "from": "left", "to": "right", "latency": "9ms" } },
                { "at": "30s", "partition": { "groups": [["left"], ["mid"]] } },
                { "at": "99s", "heal": "all" },
            ]
        }))
        .unwrap();
        let (events, cuts) = network_axis(&net, Some(60.0));
        let at: Vec<(f64, &str)> = events.iter().map(|e| (e.at_s, e.kind.as_str())).collect();
        assert_eq!(
            at,
            [
                (12.0, "partition"),
                (22.0, "heal"),
                (25.0, "set_link"),
                (30.0, "partition")
            ]
        );
        assert_eq!(events[0].what, "partition `cut`: left | right");
        assert_eq!(cuts.len(), 2);
        assert_eq!((cuts[0].from_s, cuts[0].to_s), (12.0, Some(22.0)));
        // The heal at 99 s came after the run: the second cut never healed.
        assert_eq!((cuts[1].from_s, cuts[1].to_s), (30.0, None));
        assert!(cuts[0].separates("left", "right") && !cuts[0].separates("left", "left"));
        assert!(cuts[0].overlaps(21.0, 22.0) && !cuts[0].overlaps(22.0, 23.0));
        assert!(!cuts[0].overlaps(11.0, 12.0) && cuts[1].overlaps(1000.0, 1001.0));
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
