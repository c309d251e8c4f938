//! Figures that mean what their labels say, with real nodes: a node that can never mesh is
//! reported as not meshed and left out of the time to mesh; a publisher paused mid-publish
//! shows its lag in the publisher-lag figure and in the latency (measured from the due time).

mod support;

use orchestrator::record::{RunRecord, Status};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::*;

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

/// The publisher is stopped (SIGSTOP) for 1.5 s while it publishes and then continued: the
/// messages due meanwhile are sent late. Their lag shows as the publisher group's lag and in
/// the latency (from the due time); the latency from send time (what a publisher that stamps
/// its send time reports) does not contain it.
#[test]
fn a_paused_publisher_shows_its_lag_in_the_lag_and_the_latency() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("paused.yaml");
    std::fs::write(&plan, PAUSED).unwrap();
    let run_id = format!("paused-{}", std::process::id());
    let mut child = Command::new(orchestrator_bin())
        .args(["run", plan.to_str().unwrap(), "--run-id", &run_id])
        .arg("--results")
        .arg(tmp.path().join("results"))
        .arg("--node-bin")
        .arg(node_bin())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The progress line of a phase appears when it has finished: after `subscribe`, the
    // publisher is publishing (for 4 s).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.trim_start().starts_with("subscribe") {
            assert!(line.contains("ok"), "subscribe failed: {line}");
            break;
        }
    }
    let publisher = find_node(&run_id, 0).expect("node 0 is running");
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: kill(2) of a process this test's orchestrator started.
    unsafe { libc::kill(publisher as i32, libc::SIGSTOP) };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: as above.
    unsafe { libc::kill(publisher as i32, libc::SIGCONT) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success(), "{rest:?}");

    let dir = tmp.path().join("results/paused").join(&run_id);
    let r: RunRecord = serde_json::from_str(&read(dir.join("run.json"))).unwrap();
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
    let md = read(dir.join("report.md"));
    assert!(md.contains("publisher lag (send − due), group pub"), "{md}");
    assert!(md.contains("from the due time (paced publishing)"), "{md}");
}
