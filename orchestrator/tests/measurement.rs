//! Figures that mean what their labels say, with real nodes: a node that can never mesh is
//! reported as not meshed and left out of the time to mesh; a publisher paused mid-publish
//! shows its lag in the publisher-lag figure and in the latency (measured from the due time);
//! a node stopped for a moment shows the fleet's largest event-loop lag; on a line of nodes
//! the hop counts are exact.

mod support;

use orchestrator::record::{RunRecord, Status};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::*;
use testbed_contract::plan::{Topology, TopologyKind};

/// Four nodes share topic `t`; node 4 alone subscribes to `alone`, which nobody else has, so
/// its mesh can never form.
const LONELY: &str = "\
version: 1
name: lonely
timeout: 2m
groups:
  - id: a
    count: 4
  - id: lonely
    count: 1
topology: { kind: full }
workload:
  - subscribe:
      topics: [t]
      groups: [a]
  - subscribe:
      topics: [alone]
      groups: [lonely]
  - publish:
      topic: t
      groups: [a]
      count: 3
  - settle: { timeout: 20s }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_mesh_is_reported_and_left_out_of_time_to_mesh() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(LONELY, &[], tmp.path()).await;
    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    let s = &r.summary;
    assert_eq!(s.not_meshed, vec![4], "node 4 went ahead without a mesh");
    assert_eq!(s.meshed_nodes, 4);
    assert_eq!(s.mesh_unknown, 0);
    let lonely = &r.nodes[4];
    assert_eq!(lonely.meshed, Some(false));
    assert_eq!(lonely.mesh_ms, None, "no time to mesh without a mesh");
    // The time to mesh is exactly the four meshed nodes' own.
    let mesh = s.time_to_mesh_ms.expect("four nodes meshed");
    let own: Vec<f64> = r.nodes[..4].iter().map(|n| n.mesh_ms.unwrap()).collect();
    assert_eq!(mesh.count, 4);
    assert_eq!(mesh.max, own.iter().copied().fold(f64::MIN, f64::max));
    assert_eq!(mesh.total, own.iter().sum::<f64>());
    let md = read(out.dir.join("report.md"));
    assert!(md.contains("4 of 5 nodes meshed"), "{md}");
    assert!(md.contains("nodes that went ahead without a mesh"), "{md}");
    assert!(md.contains("nodes 4"), "{md}");
}

/// One publisher (node 0) sends 40 messages at 10/s to two subscribers.
const PAUSED: &str = "\
version: 1
name: paused
timeout: 2m
groups:
  - id: pub
    count: 1
  - id: sub
    count: 2
topology: { kind: full }
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      groups: [pub]
      count: 40
      rate: 10
  - settle: { timeout: 30s }
";

/// Runs `plan` (named `name`) and stops node `index` (SIGSTOP) for `pause_ms` once the
/// `subscribe` phase is over plus `after_ms`, then continues it (SIGCONT). Returns the record
/// and the results folder.
fn run_pausing(
    tmp: &std::path::Path,
    plan: &str,
    name: &str,
    index: u32,
    after_ms: u64,
    pause_ms: u64,
) -> (RunRecord, std::path::PathBuf) {
    let file = tmp.join(format!("{name}.yaml"));
    std::fs::write(&file, plan).unwrap();
    let run_id = format!("{name}-{}", std::process::id());
    let mut child = Command::new(orchestrator_bin())
        .args(["run", file.to_str().unwrap(), "--run-id", &run_id])
        .arg("--results")
        .arg(tmp.join("results"))
        .arg("--node-bin")
        .arg(node_bin())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The progress line of a phase appears when it has finished: after `subscribe`, the
    // publisher is publishing.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.trim_start().starts_with("subscribe") {
            assert!(line.contains("ok"), "subscribe failed: {line}");
            break;
        }
    }
    let pid = find_node(&run_id, index).expect("the node is running");
    std::thread::sleep(std::time::Duration::from_millis(after_ms));
    // SAFETY: kill(2) of a process this test's orchestrator started.
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    std::thread::sleep(std::time::Duration::from_millis(pause_ms));
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success(), "{rest:?}");
    let dir = tmp.join("results").join(name).join(&run_id);
    let r: RunRecord = serde_json::from_str(&read(dir.join("run.json"))).unwrap();
    (r, dir)
}

/// The publisher is stopped (SIGSTOP) for 1.5 s while it publishes and then continued: the
/// messages due meanwhile are sent late. Their lag shows as the publisher group's lag and in
/// the latency (from the due time); the latency from send time (what a publisher that stamps
/// its send time reports) does not contain it.
#[test]
fn a_paused_publisher_shows_its_lag_in_the_lag_and_the_latency() {
    let tmp = tempfile::tempdir().unwrap();
    let (r, dir) = run_pausing(tmp.path(), PAUSED, "paused", 0, 500, 1500);
    let s = &r.summary;
    assert_eq!(s.delivery_ratio, Some(1.0));
    assert_eq!(s.paced_messages, 40);
    let [lag] = s.publish_lag.as_slice() else {
        panic!("one publisher group: {:?}", s.publish_lag);
    };
    assert_eq!(
        (lag.group.as_str(), lag.publishers, lag.messages),
        ("pub", 1, 40)
    );
    // The message due right after the stop was sent about 1.5 s late.
    assert!(lag.max_ms >= 1_000.0, "publisher lag {lag:?}");
    let latency = s.latency.expect("deliveries");
    assert!(
        latency.max_ms >= lag.max_ms,
        "the lag is in the latency from the due time: {latency:?}, lag {lag:?}"
    );
    let since_send = s.latency_since_send.expect("protocol 2 nodes");
    eprintln!(
        "publisher lag max {:.1} ms; latency from due: max {:.1} ms; from send: max {:.1} ms",
        lag.max_ms, latency.max_ms, since_send.max_ms
    );
    // The stop shows in the publisher's own event loop too.
    let loop_lag = r.sections.loop_lag.as_ref().expect("loop lag measured");
    assert_eq!(loop_lag.worst.index, 0, "{loop_lag:?}");
    let md = read(dir.join("report.md"));
    assert!(md.contains("publisher lag (send − due), group pub"), "{md}");
    assert!(md.contains("from the due time (paced publishing)"), "{md}");
}

/// One publisher (node 0) sends 60 messages at 10/s to three subscribers.
const STALLED: &str = "\
version: 1
name: stalled
timeout: 2m
groups:
  - id: pub
    count: 1
  - id: sub
    count: 3
topology: { kind: full }
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      groups: [pub]
      count: 60
      rate: 10
  - settle: { timeout: 30s }
";

/// A subscriber (node 3) is stopped for 1.5 s while messages flow (well under the 2.5 s
/// after which a stopped node counts as hung): its event loop gets to its probe tick about
/// that late, so its loop lag in the publish window is the fleet's largest and the report
/// names it. Relative to the other nodes, not to a speed: the machine may be busy.
#[test]
fn a_stopped_node_shows_the_largest_event_loop_lag() {
    let tmp = tempfile::tempdir().unwrap();
    let (r, dir) = run_pausing(tmp.path(), STALLED, "stalled", 3, 1000, 1500);
    assert_eq!(r.summary.delivery_ratio, Some(1.0));
    let l = r
        .sections
        .loop_lag
        .as_ref()
        .expect("Rust nodes report their loop lag");
    assert_eq!(
        (l.nodes_measured, l.window.as_str()),
        (4, "publish_to_settle")
    );
    assert!(l.not_measured.is_empty(), "{:?}", l.not_measured);
    let window_max = |i: u32| {
        let n = l
            .nodes
            .iter()
            .find(|n| n.index == i)
            .expect("every node measured");
        assert!(n.ticks > 0, "{n:?}");
        n.window_max_ms.expect("ticks in the window")
    };
    let stopped = window_max(3);
    // The stop, less at most one probe interval (1 s) before the tick was due.
    assert!(stopped >= 400.0, "node 3 was stopped for 1.5 s: {l:?}");
    for i in 0..3 {
        assert!(
            window_max(i) < stopped,
            "node {i} vs the stopped node 3: {l:?}"
        );
    }
    assert_eq!(l.worst.index, 3, "{l:?}");
    let md = read(dir.join("report.md"));
    assert!(
        md.contains("largest event-loop lag in the publish window"),
        "{md}"
    );
    assert!(md.contains("at node 3 (group sub)"), "{md}");
}

/// The seed for which the `random` dial plan of degree 1 over 5 nodes is the line
/// 0 – 1 – 2 – 3 – 4 (each node dials the one before it, and nothing else).
fn line_seed() -> u64 {
    let topology = Topology {
        kind: TopologyKind::Random,
        degree: 1,
        ..Topology::default()
    };
    let line: Vec<Vec<u32>> = (0..5u32)
        .map(|i| i.checked_sub(1).into_iter().collect())
        .collect();
    (0..100_000)
        .find(|&seed| orchestrator::topology::dial_plan(&topology, 5, seed) == line)
        .expect("some seed draws a line")
}

/// On a line of 5 nodes with the publisher at one end, node k is exactly k hops away: each
/// message is delivered at 1, 2, 3 and 4 hops, and the report's histogram says exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_counts_on_a_line_are_exact() {
    let seed = line_seed();
    let plan = format!(
        "\
version: 1
name: line
timeout: 2m
seed: {seed}
groups:
  - id: pub
    count: 1
  - id: rest
    count: 4
topology: {{ kind: random, degree: 1 }}
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      groups: [pub]
      count: 10
      rate: 20
  - settle: {{ timeout: 30s }}
"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(&plan, &[], tmp.path()).await;
    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    assert_eq!(r.summary.delivery_ratio, Some(1.0));
    let h = r
        .sections
        .hops
        .as_ref()
        .expect("Rust nodes list their sources");
    let hist: Vec<(u32, u64)> = h.histogram.iter().map(|c| (c.hops, c.deliveries)).collect();
    assert_eq!(hist, vec![(1, 10), (2, 10), (3, 10), (4, 10)], "{h:?}");
    assert_eq!(
        (h.deliveries, h.mean_hops, h.max_hops),
        (40, Some(2.5), Some(4))
    );
    assert_eq!((h.unknown_source, h.broken_chain, h.dropped), (0, 0, 0));
    assert_eq!(h.nodes_reporting, 4, "the publisher received nothing");
    let md = read(out.dir.join("report.md"));
    assert!(
        md.contains("2.50 / 4 (hops: deliveries — 1: 10, 2: 10, 3: 10, 4: 10)"),
        "{md}"
    );
}
