//! Connection security in a real fleet: validation refuses a plan that connects groups of
//! different security, and a fleet that is mixed anyway (the plan changed after validation,
//! as a runner of another orchestrator could) fails at connect with a reason that names the
//! mismatch — plaintext and noise peers interoperate only with their own kind.

mod support;

use orchestrator::plan;
use orchestrator::record::Status;
use orchestrator::run::run_plan;
use std::collections::BTreeMap;
use std::path::Path;
use support::*;
use testbed_contract::plan::Security;
use tokio::sync::watch;

const PLAN: &str = "\
version: 1
name: security-mix
timeout: 1m
groups:
  - id: a
    count: 2
    security: plaintext
  - id: b
    count: 2
    security: plaintext
topology:
  kind: full
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 3
  - settle:
      timeout: 10s
";

async fn run(mix: bool) -> orchestrator::run::RunOutput {
    let tmp = tempfile::tempdir().unwrap();
    let mut loaded = plan::load_text(Path::new("mix.yaml"), PLAN, &BTreeMap::new()).unwrap();
    if mix {
        loaded.plan.groups[0].security = Security::Noise;
    }
    let (_tx, rx) = watch::channel(false);
    let out = run_plan(&loaded, &options(tmp.path()), rx).await.unwrap();
    assert_no_node_left(&out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn one_security_throughout_connects_and_delivers() {
    let out = run(false).await;
    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    assert_eq!(r.summary.delivery_ratio, Some(1.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_security_fails_at_connect_naming_the_mismatch() {
    let out = run(true).await;
    let r = &out.record;
    assert_eq!(
        r.outcome.status,
        Status::NodeFailed,
        "{:?}",
        r.outcome.reasons
    );
    let all = r.outcome.reasons.join("\n");
    // Nodes 2 and 3 (plaintext) dial nodes 0 and 1 (noise).
    assert!(all.contains("security handshake failed"), "{all}");
    assert!(
        all.contains("peers of different security cannot connect"),
        "{all}"
    );
    let connect = r.phases.iter().find(|p| p.kind == "connect").unwrap();
    assert!(!connect.ok);
}

#[test]
fn validation_refuses_the_mixed_plan_naming_the_group() {
    let text = PLAN.replacen("    security: plaintext\n", "    security: noise\n", 1);
    let err = plan::load_text(Path::new("mix.yaml"), &text, &BTreeMap::new()).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("mix.yaml:10"), "{shown}");
    assert!(shown.contains("groups[1].security"), "{shown}");
    assert!(
        shown.contains("group `b` uses plaintext security and group `a` noise"),
        "{shown}"
    );
}
