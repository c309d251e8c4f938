//! The conformance check (`orchestrator conformance`) against real node programs: it passes
//! for the Rust, Go and JS nodes, and fails, naming the fault, for test doubles that break the
//! contract (examples/node-double.rs: a real Rust node behind a relay that breaks one thing).
//! And a node that sends a malformed control message in a real run is named, while the
//! orchestrator goes on and ends the run cleanly.
//!
//! The Go and JS checks need `interop/build.sh`; they skip when the nodes are not built,
//! except in CI (`CI` set), where scripts/ci-extras.sh has built them.

mod support;

use orchestrator::conformance::{self, CheckStatus, ConformanceOptions, ConformanceReport};
use orchestrator::record::{NodeStatus, RunRecord, Status};
use orchestrator::runner::program::{NodeProgram, Programs};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;
use testbed_contract::plan::Implementation;

fn programs() -> Programs {
    Programs::discover(Some(node_bin()), Some(workspace().join("interop")))
}

/// The test double, built by `cargo test` with the package's examples.
fn double_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/node-double");
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds the examples",
        bin.display()
    );
    bin
}

/// The double breaking the contract with `fault`, as a program: `env VAR=… node-double`
/// (env execs it, so the pid the check sees is the double's).
fn double(fault: &str) -> NodeProgram {
    NodeProgram {
        path: PathBuf::from("/usr/bin/env"),
        args: vec![
            format!("DOUBLE_NODE_BIN={}", node_bin().display()),
            format!("DOUBLE_FAULT={fault}"),
            double_bin().display().to_string(),
        ],
    }
}

async fn check(implementation: Implementation, program: Option<NodeProgram>) -> ConformanceReport {
    let opts = ConformanceOptions {
        implementation,
        impl_version: None,
        programs: programs(),
        program,
        log_dir: None,
        keep_logs: false,
    };
    conformance::run(&opts).await.expect("the check runs")
}

fn assert_passes(r: &ConformanceReport) {
    assert!(r.passed(), "{}", r.render());
    assert_eq!(r.checks.len(), conformance::CATALOGUE.len());
}

fn skip_unless_built(what: &str, program: &Path) -> bool {
    if program.exists() {
        return false;
    }
    let why = format!("{} is not built (interop/build.sh)", program.display());
    if std::env::var_os("CI").is_some() {
        panic!(
            "{what}: CI is set, so the interop nodes must be built (scripts/ci-extras.sh), but {why}"
        );
    }
    eprintln!(
        "SKIPPED {what}: {why}; build it with `interop/build.sh` (needs Go 1.26+, Node.js 20+ and npm)"
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_node_conforms() {
    assert_passes(&check(Implementation::Rust, None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_node_conforms() {
    if skip_unless_built(
        "the_go_node_conforms",
        &workspace().join("interop/go/bin/pubsub-node-go"),
    ) {
        return;
    }
    let r = check(Implementation::Go, None).await;
    assert_passes(&r);
    assert!(
        r.impl_version
            .as_deref()
            .is_some_and(|v| v.contains("go-libp2p-pubsub")),
        "{:?}",
        r.impl_version
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_node_conforms() {
    if skip_unless_built(
        "the_js_node_conforms",
        &workspace().join("interop/js/node_modules"),
    ) {
        return;
    }
    let r = check(Implementation::Js, None).await;
    assert_passes(&r);
    assert!(
        r.impl_version
            .as_deref()
            .is_some_and(|v| v.contains("js-libp2p")),
        "{:?}",
        r.impl_version
    );
}

/// The double without a fault passes: the relay itself is transparent, so the failures below
/// are the faults' and nothing else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_double_without_a_fault_conforms() {
    assert_passes(&check(Implementation::Rust, Some(double("none"))).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_result_fails_the_check_by_name() {
    let r = check(Implementation::Rust, Some(double("result-missing-field"))).await;
    assert!(!r.passed());
    let wf = r.check("result.well-formed").unwrap();
    assert_eq!(wf.status, CheckStatus::Fail, "{}", r.render());
    let detail = wf.detail.as_deref().unwrap();
    assert!(
        detail.contains("node 0") && detail.contains("missing field `received`"),
        "{detail}"
    );
    // The fault is the result's only: the messages before it, the handshake and the commands
    // all pass.
    for id in [
        "hello",
        "listening",
        "messages.well-formed",
        "connect",
        "publish",
        "finish",
        "abort",
    ] {
        assert_eq!(
            r.check(id).unwrap().status,
            CheckStatus::Pass,
            "{id}: {}",
            r.render()
        );
    }
    assert!(r.render().contains("[FAIL] result.well-formed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_that_do_not_decode_fail_the_check_by_name() {
    let r = check(Implementation::Rust, Some(double("bad-histogram"))).await;
    let h = r.check("result.histograms").unwrap();
    assert_eq!(h.status, CheckStatus::Fail, "{}", r.render());
    assert!(
        h.detail.as_deref().unwrap().contains("cookie"),
        "{:?}",
        h.detail
    );
    assert_eq!(
        r.check("result.well-formed").unwrap().status,
        CheckStatus::Pass
    );
}

/// Through the command line: the checklist names the failed check, exit code 1.
#[test]
fn the_command_names_a_malformed_control_message_and_exits_1() {
    let out = Command::new(orchestrator_bin())
        .args(["conformance", "--impl", "rust", "--node-bin"])
        .arg(node_bin())
        .arg("--interop-dir")
        .arg(workspace().join("interop"))
        .arg("--program")
        .arg(double_bin())
        .env("DOUBLE_NODE_BIN", node_bin())
        .env("DOUBLE_FAULT", "malformed-state")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[FAIL] messages.well-formed"), "{stdout}");
    assert!(stdout.contains("unknown variant `flying`"), "{stdout}");
    assert!(
        stdout.contains("FAILED:") && stdout.contains("node logs:"),
        "{stdout}"
    );
}

/// Runs `plan_text` (a plan named `name`) with node `index` behind the double breaking the
/// contract with `fault`; returns the run's folder, its record and the run id. The run must end
/// as a node failure (exit code 2).
fn run_with_faulty_node(
    tmp: &Path,
    name: &str,
    plan_text: &str,
    fault: &str,
    index: u32,
) -> (PathBuf, RunRecord, String) {
    let plan = tmp.join(format!("{name}.yaml"));
    std::fs::write(&plan, plan_text).unwrap();
    let run_id = format!("{name}-{}", std::process::id());
    let out = Command::new(orchestrator_bin())
        .args([
            "run",
            plan.to_str().unwrap(),
            "--quiet",
            "--run-id",
            &run_id,
            "--results",
        ])
        .arg(tmp.join("results"))
        .arg("--node-bin")
        .arg(double_bin())
        .env("DOUBLE_NODE_BIN", node_bin())
        .env("DOUBLE_FAULT", fault)
        .env("DOUBLE_FAULT_INDEX", index.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code of a node failure; stderr: {stderr}"
    );
    let dir = tmp.join("results").join(name).join(&run_id);
    let record: RunRecord = serde_json::from_str(&read(dir.join("run.json"))).unwrap();
    (dir, record, run_id)
}

/// In a real run, node 2 sends a state that does not exist right after it listens: the run
/// names node 2 and the malformed message, aborts the others (their results are kept), reaps
/// every process and writes its reports.
#[test]
fn a_malformed_control_message_in_a_run_is_named_and_the_run_ends_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, record, run_id) = run_with_faulty_node(
        tmp.path(),
        "malformed",
        "version: 1\nname: malformed\ntimeout: 2m\ngroups:\n  - id: peers\n    count: 4\nworkload:\n  - subscribe: {topics: [t]}\n  - publish: {topic: t, count: 5}\n  - settle: {}\n",
        "malformed-state",
        2,
    );
    assert_eq!(record.outcome.status, Status::NodeFailed);
    let bad = &record.nodes[2];
    assert_eq!(bad.status, NodeStatus::Failed);
    let why = bad.failure.as_deref().unwrap();
    assert!(
        why.contains("node 2")
            && why.contains("malformed control message")
            && why.contains("flying"),
        "{why}"
    );
    assert!(
        record.outcome.reasons.iter().any(|r| r.contains("node 2")),
        "{:?}",
        record.outcome.reasons
    );
    for n in record.nodes.iter().filter(|n| n.index != 2) {
        assert_eq!(
            n.status,
            NodeStatus::Aborted,
            "node {}: {:?}",
            n.index,
            n.failure
        );
        assert!(n.result.is_some(), "node {} kept its result", n.index);
    }
    let md = read(dir.join("report.md"));
    assert!(
        md.contains("malformed control message") && md.contains("| 2 |"),
        "{md}"
    );
    // Every process (the doubles and the nodes behind them) is gone.
    assert_run_gone(&run_id);
}

/// Node 1 never acknowledges its second `subscribe` (the double drops the ack) while it keeps
/// serving the channel: the run names it hung, and the abort that ends the run reaches it too,
/// so its partial result — the messages it received before — is kept and counted.
#[test]
fn a_hung_node_is_named_and_its_partial_result_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, record, _) = run_with_faulty_node(
        tmp.path(),
        "hung",
        "version: 1\nname: hung\ntimeout: 2m\ngroups:\n  - id: peers\n    count: 3\nworkload:\n  - subscribe: {topics: [t]}\n  - publish: {topic: t, count: 4}\n  - settle: {}\n  - subscribe: {topics: [u], wait_mesh: false, mesh_timeout: 1s}\n",
        "swallow-ack:subscribe:2",
        1,
    );
    assert_eq!(record.outcome.status, Status::NodeFailed);
    let hung = &record.nodes[1];
    assert_eq!(hung.status, NodeStatus::Hung, "{:?}", hung.failure);
    let why = hung.failure.as_deref().unwrap();
    assert!(
        why.contains("node 1") && why.contains("subscription"),
        "{why}"
    );
    let result = hung
        .result
        .as_ref()
        .expect("the hung node answered the abort with its result");
    // 2 other publishers × 4 messages reached node 1 before it hung.
    assert_eq!(result.received, 8, "{result:?}");
    assert_eq!(record.summary.nodes_without_result, 0);
    assert_eq!(record.summary.delivered, 3 * 2 * 4);
    for n in record.nodes.iter().filter(|n| n.index != 1) {
        assert_eq!(n.status, NodeStatus::Aborted, "node {}", n.index);
        assert!(n.result.is_some(), "node {} kept its result", n.index);
    }
}
