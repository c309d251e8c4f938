//! Every node's clock offset from the orchestrator's, measured over the control channel the
//! NTP way, and the correction sent to the nodes that take it.
//!
//! A measurement sends each node [`PINGS`] pings a few ms apart (all nodes in parallel). The
//! orchestrator notes its wall clock t0 before a ping goes out and t3 when the pong is
//! handled; the pong carries one time, `at`, the node's clock when it read the ping. Then
//! θ = at − (t0 + t3)/2 is the node's clock minus the orchestrator's, exact to within
//! u = (t3 − t0)/2 whatever the split of the round trip between the two ways (with a single
//! node time, the node's own turnaround counts as part of the round trip). The ping of
//! smallest round trip is kept. This runs after the handshake and again after the last
//! phase; the two bound the drift.
//!
//! Ping ids of this module have [`PING_ID_BIT`] set, so other users of ping (liveness) keep
//! it clear and their pongs never mix with these.

use crate::fleet::{Fleet, Stop};
use crate::record::sections::{ClockSample, ClockSection, NodeClock};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testbed_contract::plan::ClockCorrection;
use testbed_contract::protocol::{Command, OrchMsg};
use tokio::time::Instant;

/// Set in every ping id this module sends; clear in everyone else's.
pub const PING_ID_BIT: u64 = 1 << 62;
/// Pings per node per measurement.
pub const PINGS: u32 = 5;
/// Between two rounds of pings, so a short stall does not spoil every sample.
const SPACING: Duration = Duration::from_millis(5);
/// How long a round waits for its pongs; a node that does not answer is left unmeasured.
const ROUND_WAIT: Duration = Duration::from_secs(2);
/// How long the nodes have to acknowledge their correction.
const CORRECTION_WAIT: Duration = Duration::from_secs(10);

static NEXT_PING: AtomicU64 = AtomicU64::new(0);

/// The orchestrator's wall clock, ns since the Unix epoch (the nodes' `*_ns` clock).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One ping's estimate from the orchestrator's send (t0) and receive (t3) times and the
/// node's time `at` between them.
pub fn sample(t0: u64, at: u64, t3: u64) -> ClockSample {
    let (t0, at) = (t0 as i128, at as i128);
    let t3 = (t3 as i128).max(t0);
    let mid = t0 + (t3 - t0) / 2;
    ClockSample {
        offset_ns: (at - mid).clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        uncertainty_ns: ((t3 - t0) / 2) as u64,
    }
}

/// Whether an implementation's node takes the optional `clock` command.
pub fn takes_correction(implementation: &str) -> bool {
    implementation == "rust"
}

/// The measurement after the handshake, and the correction when `setting` calls for it
/// (`same_clock`: the nodes run on the orchestrator's machine).
pub async fn at_start(
    fleet: &mut Fleet,
    setting: ClockCorrection,
    same_clock: bool,
) -> Result<ClockSection, Stop> {
    let samples = measure(fleet).await?;
    let corrected = setting.applies(same_clock);
    let mut section = ClockSection {
        setting: setting.as_str().into(),
        corrected,
        pings: PINGS,
        nodes: fleet
            .nodes()
            .iter()
            .map(|s| NodeClock {
                index: s.index(),
                implementation: s.implementation().into(),
                start: samples.get(&s.index()).copied(),
                end: None,
                applied_ns: None,
                error_bound_ns: None,
            })
            .collect(),
        max_abs_offset_ns: None,
        max_uncertainty_ns: None,
        max_drift_ns: None,
        latency_error_bound_ns: None,
        unmeasured: Vec::new(),
        uncorrected: Vec::new(),
    };
    if corrected {
        correct(fleet, &mut section).await?;
    }
    summarize(&mut section);
    Ok(section)
}

/// The measurement after the last phase. A corrected node's pong is on the orchestrator's
/// clock already; its correction is added back so that start and end compare.
pub async fn at_end(fleet: &mut Fleet, section: &mut ClockSection) -> Result<(), Stop> {
    let samples = measure(fleet).await?;
    for (index, mut s) in samples {
        let pos = match section.nodes.iter().position(|n| n.index == index) {
            Some(p) => p,
            None => {
                // Launched during the run (churn): measured at the end only.
                let implementation = fleet
                    .node(index)
                    .map_or(String::new(), |n| n.implementation().into());
                section.nodes.push(NodeClock {
                    index,
                    implementation,
                    start: None,
                    end: None,
                    applied_ns: None,
                    error_bound_ns: None,
                });
                section.nodes.len() - 1
            }
        };
        let node = &mut section.nodes[pos];
        s.offset_ns = s.offset_ns.saturating_add(node.applied_ns.unwrap_or(0));
        node.end = Some(s);
    }
    summarize(section);
    Ok(())
}

/// Tells every measured node that takes the command its start offset.
async fn correct(fleet: &mut Fleet, section: &mut ClockSection) -> Result<(), Stop> {
    let mut ids = Vec::new();
    for node in &section.nodes {
        let Some(start) = node.start else { continue };
        if !takes_correction(&node.implementation) {
            continue;
        }
        let cmd = Command::Clock {
            offset_ns: start.offset_ns,
        };
        if let Some(id) = fleet.command(node.index, cmd) {
            ids.push((node.index, id));
        }
    }
    let just_ids: Vec<u64> = ids.iter().map(|x| x.1).collect();
    let until = Instant::now() + CORRECTION_WAIT;
    fleet
        .await_acks(&just_ids, until, "its clock correction")
        .await?;
    for (index, id) in ids {
        if fleet.ack(id).is_some_and(|a| a.ok)
            && let Some(node) = section.nodes.iter_mut().find(|n| n.index == index)
        {
            node.applied_ns = node.start.map(|s| s.offset_ns);
        }
    }
    Ok(())
}

/// [`PINGS`] rounds over every live node that speaks protocol 2; the best sample per node.
async fn measure(fleet: &mut Fleet) -> Result<BTreeMap<u32, ClockSample>, Stop> {
    let targets: Vec<u32> = fleet
        .alive()
        .filter(|s| s.protocol() >= 2)
        .map(|s| s.index())
        .collect();
    let mut best: BTreeMap<u32, ClockSample> = BTreeMap::new();
    for round in 0..PINGS {
        if round > 0 {
            fleet
                .wait_until(Instant::now() + SPACING, |_| false)
                .await?;
        }
        let mut sent = Vec::with_capacity(targets.len());
        for &i in &targets {
            let id = PING_ID_BIT | NEXT_PING.fetch_add(1, Ordering::Relaxed);
            let t0 = wall_ns();
            fleet.send(i, OrchMsg::Ping { id });
            sent.push((i, id, t0));
        }
        let until = Instant::now() + ROUND_WAIT;
        fleet
            .wait_until(until, |f| sent.iter().all(|&(_, id, _)| f.has_pong(id)))
            .await?;
        for (i, id, t0) in sent {
            let Some(p) = fleet.take_pong(id) else {
                continue;
            };
            let s = sample(t0, p.at_ns, p.received_ns);
            let b = best.entry(i).or_insert(s);
            if s.uncertainty_ns < b.uncertainty_ns {
                *b = s;
            }
        }
    }
    Ok(best)
}

/// The section's figures from its samples (pure).
///
/// A node's clock error at any moment of the run is bounded by its largest distance from
/// the offset it was corrected by (0: uncorrected), at start or at end, plus that sample's
/// uncertainty: a clock that runs at a steady rate is between its start and end offsets
/// throughout. A latency compares two nodes' clocks, so its bound is the two largest node
/// bounds added.
pub fn summarize(section: &mut ClockSection) {
    let mut bounds = Vec::new();
    section.unmeasured.clear();
    section.uncorrected.clear();
    let (mut max_abs, mut max_u, mut max_drift) = (None::<u64>, None::<u64>, None::<u64>);
    for node in &mut section.nodes {
        let samples: Vec<ClockSample> = node.start.iter().chain(&node.end).copied().collect();
        if node.start.is_none() {
            section.unmeasured.push(node.index);
        }
        if section.corrected && node.start.is_some() && node.applied_ns.is_none() {
            section.uncorrected.push(node.index);
        }
        for s in &samples {
            max_abs = max_abs.max(Some(s.offset_ns.unsigned_abs()));
            max_u = max_u.max(Some(s.uncertainty_ns));
        }
        if let (Some(a), Some(b)) = (node.start, node.end) {
            let drift = (b.offset_ns as i128 - a.offset_ns as i128).unsigned_abs() as u64;
            max_drift = max_drift.max(Some(drift));
        }
        let applied = node.applied_ns.unwrap_or(0) as i128;
        node.error_bound_ns = samples
            .iter()
            .map(|s| (s.offset_ns as i128 - applied).unsigned_abs() as u64 + s.uncertainty_ns)
            .max();
        bounds.extend(node.error_bound_ns);
    }
    bounds.sort_unstable_by(|a, b| b.cmp(a));
    section.max_abs_offset_ns = max_abs;
    section.max_uncertainty_ns = max_u;
    section.max_drift_ns = max_drift;
    section.latency_error_bound_ns =
        (section.unmeasured.is_empty() && !bounds.is_empty()).then(|| bounds.iter().take(2).sum());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_the_midpoint_offset_and_half_the_round_trip() {
        // Sent at 1000, answered at 1600 by a clock 100 ahead of a symmetric path's 1500.
        let s = sample(1_000, 1_600, 2_000);
        assert_eq!((s.offset_ns, s.uncertainty_ns), (100, 500));
        let s = sample(1_000, 1_400, 2_000);
        assert_eq!(s.offset_ns, -100);
        // A node time at either end of the round trip is still within the uncertainty.
        for at in [1_000, 2_000] {
            let s = sample(1_000, at, 2_000);
            assert!(s.offset_ns.unsigned_abs() <= s.uncertainty_ns);
        }
    }

    fn node(index: u32, start: i64, end: Option<i64>, applied: Option<i64>) -> NodeClock {
        NodeClock {
            index,
            implementation: "rust".into(),
            start: Some(ClockSample {
                offset_ns: start,
                uncertainty_ns: 10,
            }),
            end: end.map(|e| ClockSample {
                offset_ns: e,
                uncertainty_ns: 20,
            }),
            applied_ns: applied,
            error_bound_ns: None,
        }
    }

    fn section(corrected: bool, nodes: Vec<NodeClock>) -> ClockSection {
        ClockSection {
            setting: "on".into(),
            corrected,
            pings: PINGS,
            nodes,
            max_abs_offset_ns: None,
            max_uncertainty_ns: None,
            max_drift_ns: None,
            latency_error_bound_ns: None,
            unmeasured: Vec::new(),
            uncorrected: Vec::new(),
        }
    }

    #[test]
    fn corrected_bounds_are_uncertainty_plus_drift() {
        let mut s = section(
            true,
            vec![
                node(0, 50_000, Some(50_100), Some(50_000)),
                node(1, -50_000, Some(-50_000), Some(-50_000)),
                node(2, 5, Some(5), None),
            ],
        );
        summarize(&mut s);
        let b: Vec<_> = s.nodes.iter().map(|n| n.error_bound_ns.unwrap()).collect();
        assert_eq!(b, [120, 20, 25]);
        assert_eq!(s.latency_error_bound_ns, Some(145));
        assert_eq!(s.max_abs_offset_ns, Some(50_100));
        assert_eq!(s.max_uncertainty_ns, Some(20));
        assert_eq!(s.max_drift_ns, Some(100));
        assert_eq!(s.uncorrected, [2]);
    }

    #[test]
    fn uncorrected_bounds_carry_the_offsets_and_a_missing_node_leaves_no_bound() {
        let mut s = section(
            false,
            vec![node(0, 50_000, None, None), node(1, 0, None, None)],
        );
        summarize(&mut s);
        assert_eq!(s.latency_error_bound_ns, Some(50_020));
        assert_eq!(s.max_drift_ns, None);
        assert!(s.uncorrected.is_empty());
        s.nodes[1].start = None;
        summarize(&mut s);
        assert_eq!(s.unmeasured, [1]);
        assert_eq!(s.latency_error_bound_ns, None);
    }
}
