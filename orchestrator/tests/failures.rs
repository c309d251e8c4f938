//! Failures named, each with its own reason, with real fleets: several nodes killed at once,
//! a stopped (SIGSTOP) node found by the liveness check, an impostor on the control channel
//! refused without touching the run, and a node whose result does not hold together (a
//! histogram that does not decode, publishes no ack counted) named for it.

mod support;

use orchestrator::record::{NodeStatus, RunRecord, Status};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use support::*;

/// Publishing takes 60 s nominal: an early end was caused by the failure.
const PLAN: &str = "\
version: 1
name: failures
timeout: 5m
groups:
  - id: peers
    count: COUNT
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 300
      rate: 5
  - settle: {}
";

/// Starts the plan with COUNT nodes; returns the child, its stderr lines after `subscribe`
/// finished, the results folder and the run id.
fn start(
    count: u32,
    tag: &str,
) -> (
    Child,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
    tempfile::TempDir,
    String,
) {
    start_plan(
        &PLAN.replace("COUNT", &count.to_string()),
        tag,
        "subscribe",
        &[],
    )
}

/// Starts `plan` with `env` added to the orchestrator's environment (which its nodes
/// inherit); returns once a stderr line starts with `after`.
fn start_plan(
    plan: &str,
    tag: &str,
    after: &str,
    env: &[(&str, &str)],
) -> (
    Child,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
    tempfile::TempDir,
    String,
) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    let run_id = format!("{tag}-{}", std::process::id());
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
        .envs(env.iter().copied())
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
    (child, lines, tmp, run_id)
}

fn finish(
    mut child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
    tmp: &tempfile::TempDir,
    plan_name: &str,
    run_id: &str,
) -> (Option<i32>, RunRecord, Vec<String>) {
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let code = child.wait().unwrap().code();
    let dir = tmp.path().join("results").join(plan_name).join(run_id);
    let record: RunRecord = serde_json::from_str(&read(dir.join("run.json")))
        .unwrap_or_else(|e| panic!("run.json: {e}; stderr {rest:?}"));
    assert_run_gone(run_id);
    (code, record, rest)
}

#[test]
fn several_nodes_killed_at_once_are_all_named() {
    let (child, lines, tmp, run_id) = start(8, "kill3");
    let victims = [2u32, 3, 5];
    let pids: Vec<u32> = victims
        .iter()
        .map(|&i| find_node(&run_id, i).expect("node runs"))
        .collect();
    for pid in pids {
        // SAFETY: kill(2) of a node this test's orchestrator started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let (code, record, rest) = finish(child, lines, &tmp, "failures", &run_id);
    assert_eq!(code, Some(2), "{rest:?}");
    assert_eq!(record.outcome.status, Status::NodeFailed);
    for &v in &victims {
        let n = &record.nodes[v as usize];
        assert_eq!(n.status, NodeStatus::Crashed, "node {v}: {:?}", n.failure);
        let why = n.failure.as_deref().unwrap_or_default();
        assert!(why.contains(&format!("node {v}")), "{why}");
        assert!(
            record
                .outcome
                .reasons
                .iter()
                .any(|r| r.contains(&format!("node {v} "))),
            "{:?}",
            record.outcome.reasons
        );
    }
    assert_eq!(
        record.summary.nodes_failed, 3,
        "{:?}",
        record.outcome.reasons
    );
    assert_eq!(record.summary.nodes_without_result, 3);
    // The killed receivers' expected deliveries are not silently dropped.
    assert!(record.summary.unverifiable_deliveries > 0);
    for n in record.nodes.iter().filter(|n| !victims.contains(&n.index)) {
        assert!(n.result.is_some(), "node {} kept its result", n.index);
    }
}

#[test]
fn a_stopped_node_is_named_within_five_seconds() {
    let (child, lines, tmp, run_id) = start(4, "stop");
    let pid = find_node(&run_id, 1).expect("node 1 runs");
    let stopped_at = chrono::Utc::now();
    // SAFETY: kill(2) of a node this test's orchestrator started.
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let (code, record, rest) = finish(child, lines, &tmp, "failures", &run_id);
    assert_eq!(code, Some(2), "{rest:?}");
    let n = &record.nodes[1];
    assert_eq!(n.status, NodeStatus::Hung, "{:?}", n.failure);
    assert!(
        n.failure.as_deref().unwrap_or_default().contains("stopped"),
        "{:?}",
        n.failure
    );
    // Detection time as the record states it (the orchestrator's clock when it named the
    // node), against when the signal was sent.
    let at =
        chrono::DateTime::parse_from_rfc3339(n.failed_at.as_deref().expect("failed_at")).unwrap();
    let after = at.signed_duration_since(stopped_at);
    assert!(
        after.num_milliseconds() <= 5_000,
        "named {} ms after SIGSTOP",
        after.num_milliseconds()
    );
    for other in record.nodes.iter().filter(|n| n.index != 1) {
        assert_eq!(other.status, NodeStatus::Aborted, "node {}", other.index);
    }
}

/// The control address and run secret a node of the run was given.
fn node_env(pid: u32, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0).find_map(|v| {
        let v = std::str::from_utf8(v).ok()?;
        Some(v.strip_prefix(&format!("{name}="))?.to_string())
    })
}

#[test]
fn an_impostor_is_refused_and_the_run_is_unaffected() {
    let plan = "\
version: 1
name: impostor
timeout: 5m
groups:
  - id: peers
    count: 3
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 20
      rate: 10
  - settle: {}
";
    let (child, lines, tmp, run_id) = start_plan(plan, "impostor", "subscribe", &[]);
    let pid = find_node(&run_id, 1).expect("node 1 runs");
    let addr = node_env(pid, "TESTBED_CONTROL_ADDR").expect("control address");
    assert!(node_env(pid, "TESTBED_RUN_SECRET").is_some_and(|s| s.len() >= 32));
    let hellos = [
        // No secret, the real node's pid: claims node 1.
        format!(
            r#"{{"type":"hello","protocol":2,"index":1,"pid":{pid},"implementation":"rust","impl_version":"x"}}"#
        ),
        // A wrong secret.
        format!(
            r#"{{"type":"hello","protocol":2,"index":2,"pid":{pid},"implementation":"rust","impl_version":"x","secret":"00000000000000000000000000000000"}}"#
        ),
    ];
    for hello in hellos {
        let answer = talk(&addr, &hello);
        assert!(answer.contains("\"abort\""), "{answer}");
        assert!(!answer.contains("welcome"), "{answer}");
    }
    let (code, record, rest) = finish(child, lines, &tmp, "impostor", &run_id);
    assert_eq!(code, Some(0), "{:?} {rest:?}", record.outcome.reasons);
    assert_eq!(record.outcome.status, Status::Passed);
    assert_eq!(record.summary.delivery_ratio, Some(1.0));
}

/// Sends one line on the control channel and returns the first line of the answer.
fn talk(addr: &str, line: &str) -> String {
    let mut answer = String::new();
    if let Some(path) = addr.strip_prefix("unix:") {
        let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
        writeln!(s, "{line}").unwrap();
        BufReader::new(s).read_line(&mut answer).unwrap();
    } else {
        let a = addr.trim_start_matches("tcp://");
        let mut s = std::net::TcpStream::connect(a).unwrap();
        writeln!(s, "{line}").unwrap();
        BufReader::new(s).read_line(&mut answer).unwrap();
    }
    answer
}

/// A short run that passes unless a node's result is wrong.
const SHORT: &str = "\
version: 1
name: node-data
timeout: 5m
groups:
  - id: peers
    count: 4
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 10
      rate: 20
  - settle: {}
";

/// Runs SHORT with node 1 injecting `fault` into its result (the node's test aid); returns
/// the exit code and the record.
fn run_with_fault(fault: &str) -> (Option<i32>, RunRecord, Vec<String>) {
    let value = format!("1:{fault}");
    let env = [("TESTBED_FAULT", value.as_str())];
    let (child, lines, tmp, run_id) = start_plan(SHORT, fault, "subscribe", &env);
    finish(child, lines, &tmp, "node-data", &run_id)
}

/// Node 1, and only node 1, is named for `what`; the others finished normally.
fn assert_only_node_1_named(record: &RunRecord, what: &str) {
    assert_eq!(record.outcome.status, Status::NodeFailed);
    let n = &record.nodes[1];
    assert_eq!(n.status, NodeStatus::Failed, "{:?}", n.failure);
    let why = n.failure.as_deref().unwrap_or_default();
    assert!(why.contains("node 1 ") && why.contains(what), "{why}");
    assert!(
        record
            .outcome
            .reasons
            .iter()
            .any(|r| r.contains("node 1 ") && r.contains(what)),
        "{:?}",
        record.outcome.reasons
    );
    assert!(n.result.is_some(), "the result is kept for a look");
    for other in record.nodes.iter().filter(|n| n.index != 1) {
        assert_eq!(other.status, NodeStatus::Ok, "node {}", other.index);
    }
    assert_eq!(
        record.summary.nodes_failed, 1,
        "{:?}",
        record.outcome.reasons
    );
}

#[test]
fn a_histogram_that_does_not_decode_fails_the_run_naming_its_node() {
    let (code, record, rest) = run_with_fault("corrupt_histogram");
    assert_eq!(code, Some(2), "{rest:?}");
    assert_only_node_1_named(&record, "does not decode");
}

#[test]
fn publishes_no_ack_counted_fail_the_run_naming_their_node() {
    let (code, record, rest) = run_with_fault("extra_publishes");
    assert_eq!(code, Some(2), "{rest:?}");
    assert_only_node_1_named(&record, "acks count 10");
}
