//! Every ending keeps the results: SIGINT and SIGTERM in a phase, and the plan's timeout,
//! end with every node asked for its result, those results kept and counted in run.json,
//! the reports written and the documented exit code — with a real fleet of real nodes.

mod support;

use orchestrator::record::{NodeStatus, RunRecord, Status};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::*;

/// Ten messages from every node, delivered before `settle` ends; then a long idle phase.
const DELIVERED_THEN_IDLE: &str = "\
version: 1
name: endings
timeout: TIMEOUT
groups:
  - id: peers
    count: 4
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 10
  - settle:
      timeout: 30s
  - wait: 10m
";

/// Publishing takes 60 s nominal: a signal after `subscribe` lands in the publish phase.
const PUBLISHING: &str = "\
version: 1
name: endings
timeout: 5m
groups:
  - id: peers
    count: 4
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 300
      rate: 5
  - settle: {}
";

/// Runs `plan` with the binary; once a stderr line starts with `after` (a finished phase),
/// waits `delay_ms` and sends `signal` (if any) to the orchestrator. Returns the exit code and
/// the record.
fn run(plan: &str, after: &str, delay_ms: u64, signal: Option<i32>) -> (Option<i32>, RunRecord) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    let run_id = format!(
        "endings-{}-{after}-{}",
        std::process::id(),
        signal.unwrap_or(0)
    );
    let mut child = Command::new(orchestrator_bin())
        .args([
            "run",
            path.to_str().unwrap(),
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
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.trim_start().starts_with(after) {
            assert!(line.contains("ok"), "{after} failed: {line}");
            break;
        }
    }
    if let Some(sig) = signal {
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SAFETY: plain kill(2) of the child this test started.
        unsafe { libc::kill(child.id() as i32, sig) };
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let dir = tmp.path().join("results/endings").join(&run_id);
    let record: RunRecord = serde_json::from_str(&read(dir.join("run.json")))
        .unwrap_or_else(|e| panic!("run.json: {e}; stderr: {rest:?}"));
    assert!(
        read(dir.join("report.md")).contains("endings"),
        "the report is written"
    );
    assert!(dir.join("metrics.prom").exists(), "metrics.prom is written");
    assert_run_gone(&run_id);
    (status.code(), record)
}

/// Every node kept its result, none is blamed, and the summary counts them all.
fn assert_every_result_kept(record: &RunRecord) {
    for n in &record.nodes {
        assert_eq!(
            n.status,
            NodeStatus::Aborted,
            "node {}: {:?}",
            n.index,
            n.failure
        );
        assert!(n.result.is_some(), "node {} kept its result", n.index);
    }
    let s = &record.summary;
    assert_eq!(s.nodes_without_result, 0);
    assert_eq!(s.nodes_failed, 0, "{:?}", record.outcome.reasons);
}

/// After `settle` every message had been delivered: the interrupted run says so.
fn assert_all_delivered(record: &RunRecord) {
    let s = &record.summary;
    assert_eq!(s.messages_published, 40);
    assert_eq!(s.expected_deliveries, 40 * 3);
    assert_eq!(s.delivered, 40 * 3, "what was delivered before the ending");
    assert_eq!(s.delivery_ratio, Some(1.0));
}

#[test]
fn sigint_after_delivery_keeps_every_result() {
    let plan = DELIVERED_THEN_IDLE.replace("TIMEOUT", "5m");
    let (code, record) = run(&plan, "settle", 300, Some(libc::SIGINT));
    assert_eq!(code, Some(130));
    assert_eq!(record.outcome.status, Status::Interrupted);
    assert_every_result_kept(&record);
    assert_all_delivered(&record);
}

#[test]
fn sigterm_after_delivery_keeps_every_result() {
    let plan = DELIVERED_THEN_IDLE.replace("TIMEOUT", "5m");
    let (code, record) = run(&plan, "settle", 300, Some(libc::SIGTERM));
    assert_eq!(code, Some(130));
    assert_eq!(record.outcome.status, Status::Interrupted);
    assert_every_result_kept(&record);
    assert_all_delivered(&record);
}

#[test]
fn the_plans_timeout_keeps_every_result_and_blames_no_node() {
    // The idle phase outlasts the timeout: the run times out with everything delivered.
    let plan = DELIVERED_THEN_IDLE.replace("TIMEOUT", "15s");
    let (code, record) = run(&plan, "settle", 0, None);
    assert_eq!(code, Some(3));
    assert_eq!(record.outcome.status, Status::Timeout);
    assert_every_result_kept(&record);
    assert_all_delivered(&record);
}

#[test]
fn sigint_while_publishing_keeps_every_partial_result() {
    let (code, record) = run(PUBLISHING, "subscribe", 1500, Some(libc::SIGINT));
    assert_eq!(code, Some(130));
    assert_eq!(record.outcome.status, Status::Interrupted);
    assert_every_result_kept(&record);
    let s = &record.summary;
    assert!(
        s.messages_published > 0 && s.messages_published < 4 * 300,
        "{s:?}"
    );
    assert!(s.delivered > 0);
    for n in &record.nodes {
        let r = n.result.as_ref().unwrap();
        assert!(!r.published.is_empty(), "node {} had published", n.index);
    }
}

#[test]
fn sigterm_while_publishing_keeps_every_partial_result() {
    let (code, record) = run(PUBLISHING, "subscribe", 1500, Some(libc::SIGTERM));
    assert_eq!(code, Some(130));
    assert_every_result_kept(&record);
    assert!(record.summary.delivered > 0);
}
