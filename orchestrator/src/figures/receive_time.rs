//! Deliveries by receive time: first deliveries per (origin group → receiver group) in
//! buckets of seconds on the network events' clock, and the timed events and partitions on
//! the same axis, so a partition shows as the cross-group counts dropping to 0.

use crate::record::{AxisEvent, Cut, NodeRecord, PairOverTime, ReceivedOverTime};
use std::collections::{BTreeMap, HashMap};
use testbed_contract::plan::{EventAction, Network};

/// Most buckets of the receive-time view; a longer run gets buckets of several seconds.
const MAX_RECEIVE_BUCKETS: u64 = 600;

/// The receive-time view of a finished run, on the network events' clock: time zero is when
/// the whole fleet had been launched, `zero_unix_ns` on the wall clock.
/// `finished_at`: when the run ended (RFC 3339); events after it are left out.
pub fn receive_view(
    nodes: &[NodeRecord],
    finished_at: &str,
    group_names: &[String],
    network: Option<&Network>,
    zero_unix_ns: u64,
) -> Option<ReceivedOverTime> {
    let mut view = received_over_time(nodes, group_names, zero_unix_ns)?;
    view.zero = "fleet_launched".into();
    if let Some(net) = network {
        let end_s = chrono::DateTime::parse_from_rfc3339(finished_at)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
