//! A node killed mid-run fails the run at once, named, with the other nodes' results kept
//! and every process reaped.

mod support;

use orchestrator::record::{NodeStatus, RunRecord, Status};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::*;

/// Publishing takes 60 s nominal (300 messages at 5/s), so a run that ends early ended
/// because the failure was detected, not because the workload finished.
const PLAN: &str = "\
version: 1
name: kill-test
timeout: 5m
groups:
  - id: peers
    count: 5
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 300
      rate: 5
  - settle: {}
";

#[test]
fn killed_node_fails_the_run_by_name_and_keeps_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("kill.yaml");
    std::fs::write(&plan, PLAN).unwrap();
    let run_id = format!("kill-{}", std::process::id());
    let mut child = Command::new(orchestrator_bin())
        .args([
            "run",
            plan.to_str().unwrap(),
            "--run-id",
            &run_id,
            "--results",
        ])
        .arg(tmp.path().join("results"))
        .arg("--node-bin")
        .arg(node_bin())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The progress line of a phase appears when it has finished: after `subscribe`, the
    // fleet is publishing.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.trim_start().starts_with("subscribe") {
            assert!(line.contains("ok"), "subscribe failed: {line}");
            break;
        }
    }
    let victim = find_node(&run_id, 3).expect("node 3 is running");
    // SAFETY: plain kill(2) of a process this test's orchestrator started.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "exit code for a node failure; stderr: {rest:?}"
    );

    let dir = tmp.path().join("results/kill-test").join(&run_id);
    let record: RunRecord = serde_json::from_str(&read(dir.join("run.json"))).unwrap();
    assert_eq!(record.outcome.status, Status::NodeFailed);
    let reasons = record.outcome.reasons.join("\n");
    assert!(
        reasons.contains("node 3") && reasons.contains("signal 9"),
        "{reasons}"
    );
    assert!(
        record.duration_s < 60.0,
        "the failure ended the run, not the workload"
    );
    let killed = &record.nodes[3];
    assert_eq!(killed.status, NodeStatus::Crashed);
    assert_eq!(killed.exit_signal, Some(libc::SIGKILL));
    for n in record.nodes.iter().filter(|n| n.index != 3) {
        assert_eq!(n.status, NodeStatus::Aborted, "node {}", n.index);
        let r = n
            .result
            .as_ref()
            .unwrap_or_else(|| panic!("node {} kept its result", n.index));
        assert!(
            !r.published.is_empty(),
            "node {} had started publishing",
            n.index
        );
    }
    assert!(read(dir.join("report.md")).contains("node 3"));
    for n in &record.nodes {
        let pid = n.pid.unwrap();
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || exited(pid),
            "node {} (pid {pid}) outlived the run",
            n.index
        );
    }
}
