//! Clock offsets measured and corrected, on a real fleet: two nodes run with clocks shifted
//! by +50 ms and −50 ms (`TESTBED_CLOCK_SKEW_NS`, the Rust node's test aid). With
//! `clock_correction: on` their measured offsets are ±50 ms within the reported uncertainty,
//! and the latencies into and out of them lie within the reported bound of the unskewed
//! nodes' latencies; with `off` they do not (the check can fail), and the reported bound
//! says so. Only recorded figures are compared: nothing here is timed.

mod support;

use orchestrator::record::sections::ClockSection;
use orchestrator::record::store::read_record;
use orchestrator::record::{RunRecord, Status};
use std::process::Command;
use support::*;
use testbed_contract::histogram;

const SKEW_NS: i64 = 50_000_000;
/// One node per group, so every origin group is one publisher and node index = group index:
/// nodes 0-3 run on the true clock, node 4 is 50 ms ahead, node 5 50 ms behind.
const PLUS: u32 = 4;
const MINUS: u32 = 5;
const UNSKEWED: std::ops::Range<u32> = 0..4;

const PLAN: &str = "
version: 1
name: clock-skew
seed: 3
timeout: 2m
params:
  correction: on
groups:
  - { id: a, count: 1 }
  - { id: b, count: 1 }
  - { id: c, count: 1 }
  - { id: d, count: 1 }
  - { id: plus, count: 1 }
  - { id: minus, count: 1 }
topology:
  kind: full
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 20
      rate: 50
      size: 64
  - settle:
      timeout: 15s
telemetry:
  clock_correction: ${correction}
assertions:
  - delivery_ratio >= 1.0
";

fn run(correction: &str) -> RunRecord {
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("clock-skew.yaml");
    std::fs::write(&plan, PLAN).unwrap();
    let results = tmp.path().join("results");
    let run_id = format!("clock-{correction}-{}", std::process::id());
    let out = Command::new(orchestrator_bin())
        .args([
            "run",
            plan.to_str().unwrap(),
            "--run-id",
            &run_id,
            "--quiet",
        ])
        .args(["--set", &format!("correction={correction}")])
        .arg("--results")
        .arg(&results)
        .arg("--node-bin")
        .arg(node_bin())
        .env(
            "TESTBED_CLOCK_SKEW_NS",
            format!("{PLUS}:{SKEW_NS},{MINUS}:-{SKEW_NS}"),
        )
        .output()
        .unwrap();
    assert_run_gone(&run_id);
    let r = read_record(&results.join("clock-skew").join(&run_id))
        .unwrap_or_else(|e| panic!("no record: {e:#}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    r
}

/// The fastest delivery's latency (µs) at `receiver` of messages from node `origin`: the
/// figure load on the machine disturbs least (a busy host only adds to a latency).
fn fastest_us(r: &RunRecord, origin: u32, receiver: u32) -> f64 {
    let origin = origin as u16;
    let res = r.nodes[receiver as usize].result.as_ref().unwrap();
    let l = res
        .latency
        .iter()
        .find(|l| l.origin_group == origin)
        .unwrap_or_else(|| panic!("node {receiver} has latencies from group {origin}"));
    let h = histogram::decode(&l.hdr).unwrap();
    assert!(!h.is_empty());
    h.min() as f64
}

/// Where latencies into and out of the skewed nodes fall outside the unskewed nodes' band
/// widened by `bound_ns`: the range of the unskewed pairs' fastest deliveries, widened on
/// each side by that range's own width (the spread this machine gives the same figure
/// without any skew) and by the bound.
fn outside_band(r: &RunRecord, bound_ns: u64) -> Vec<String> {
    let unskewed: Vec<f64> = UNSKEWED
        .flat_map(|p| UNSKEWED.filter(move |&q| q != p).map(move |q| (p, q)))
        .map(|(p, q)| fastest_us(r, p, q))
        .collect();
    let min = unskewed.iter().copied().fold(f64::INFINITY, f64::min);
    let max = unskewed.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let widen = (max - min) + bound_ns as f64 / 1e3;
    let (lo, hi) = (min - widen, max + widen);
    let mut checks = Vec::new();
    for skewed in [PLUS, MINUS] {
        for other in UNSKEWED {
            checks.push((format!("{other} → {skewed}"), fastest_us(r, other, skewed)));
            checks.push((format!("{skewed} → {other}"), fastest_us(r, skewed, other)));
        }
    }
    checks
        .into_iter()
        .filter(|(_, v)| *v < lo || *v > hi)
        .map(|(what, v)| format!("{what}: fastest {v} µs outside [{lo:.0}, {hi:.0}] µs"))
        .collect()
}

fn clock(r: &RunRecord) -> &ClockSection {
    r.sections.clock.as_ref().expect("a clock section")
}

/// Every node's start and end offsets are its injected skew within the sample's uncertainty
/// (one machine: the true offset is exactly the skew).
fn assert_offsets_measured(c: &ClockSection) {
    assert!(c.unmeasured.is_empty(), "{:?}", c.unmeasured);
    for n in &c.nodes {
        let skew = match n.index {
            PLUS => SKEW_NS,
            MINUS => -SKEW_NS,
            _ => 0,
        };
        for s in [n.start, n.end] {
            let s = s.unwrap_or_else(|| panic!("node {} measured at start and end", n.index));
            assert!(
                (s.offset_ns - skew).unsigned_abs() <= s.uncertainty_ns,
                "node {}: offset {} ± {} ns, skew {skew} ns",
                n.index,
                s.offset_ns,
                s.uncertainty_ns
            );
        }
    }
}

#[test]
fn injected_offsets_are_measured_and_corrected_within_the_bound() {
    let on = run("on");
    let c = clock(&on);
    assert!(c.corrected && c.setting == "on");
    assert_offsets_measured(c);
    assert!(c.uncorrected.is_empty());
    for n in &c.nodes {
        assert_eq!(
            n.applied_ns,
            n.start.map(|s| s.offset_ns),
            "node {}",
            n.index
        );
    }
    let bound = c.latency_error_bound_ns.expect("a bound");
    // The bound is about the measurement, not the skew: far below 50 ms on one machine.
    assert!(bound < SKEW_NS as u64 / 2, "bound {bound} ns");
    let bad = outside_band(&on, bound);
    assert!(bad.is_empty(), "bound {bound} ns:\n{}", bad.join("\n"));
    let clamped: u64 = on
        .nodes
        .iter()
        .filter_map(|n| n.finish_info.as_ref()?.clamped_latencies)
        .sum();
    assert_eq!(clamped, 0);

    // Uncorrected, the same check fails by the skew, and the reported bound covers it.
    let off = run("off");
    let c = clock(&off);
    assert!(!c.corrected && c.nodes.iter().all(|n| n.applied_ns.is_none()));
    assert_offsets_measured(c);
    let bad = outside_band(&off, bound);
    assert!(
        bad.iter().any(|b| b.starts_with(&format!("0 → {PLUS}"))),
        "a +50 ms receiver shows uncorrected: {bad:?}"
    );
    let off_bound = c.latency_error_bound_ns.expect("a bound");
    assert!(off_bound >= 2 * SKEW_NS as u64, "off bound {off_bound} ns");
    assert!(outside_band(&off, off_bound).is_empty());
}

#[tokio::test]
async fn a_local_run_measures_but_does_not_correct_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let text = PLAN.replace("${correction}", "auto");
    let out = run_text(&text, &[], tmp.path()).await;
    let c = clock(&out.record);
    assert!(!c.corrected && c.setting == "auto");
    assert_eq!(c.nodes.len(), 6);
    assert!(c.nodes.iter().all(|n| n.start.is_some() && n.end.is_some()));
    assert!(c.latency_error_bound_ns.is_some());
}
