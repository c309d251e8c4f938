//! The `witness:` option: listen-only subscribers outside the fleet count what the fleet
//! published, and the report sets their counts beside the fleet's, which never include
//! them. A Rust witness always runs; the JS witness needs the JS node (`interop/build.sh js`)
//! and skips without it, except under CI (`CI` set), where it must run.

mod support;

use orchestrator::plan;
use orchestrator::record::{RunRecord, Status};
use orchestrator::run::run_plan;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use support::*;
use tokio::sync::watch;

/// A gossipsub fleet on a random topology, every host publishing at a rate, with witnesses.
const PLAN: &str = "\
version: 1
name: witness
seed: 5
params: { hosts: 12, per_host: 5, implementation: rust, witnesses: 2 }
groups:
  - id: hosts
    count: ${hosts}
witness: { implementation: ${implementation}, count: ${witnesses} }
topology: { kind: random, degree: 3 }
workload:
  - subscribe: { topics: [w], mesh_timeout: 10s }
  - publish: { topic: w, count: ${per_host}, rate: 50, size: 128 }
  - settle: { timeout: 30s }
assertions:
  - delivery_ratio >= 1.0
";

/// The checks every witness run must pass: the fleet's figures are the fleet's alone, and
/// every witness counted exactly the published messages.
fn assert_witnessed(r: &RunRecord, hosts: u32, witnesses: u32, implementation: &str) {
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    // The fleet's records and figures: no witness among them.
    assert_eq!(r.nodes.len() as u32, hosts);
    assert!(
        r.nodes
            .iter()
            .all(|n| n.index < hosts && n.group != "witness")
    );
    let s = &r.summary;
    assert_eq!(
        s.expected_deliveries,
        s.messages_published * u64::from(hosts - 1)
    );
    assert_eq!(s.delivered, s.expected_deliveries);
    let w = r.sections.witness.as_ref().expect("a witness section");
    assert_eq!(w.messages_published, s.messages_published);
    assert_eq!(w.witnesses.len() as u32, witnesses);
    assert_eq!(w.nodes.len() as u32, witnesses);
    for (k, f) in w.witnesses.iter().enumerate() {
        assert_eq!(
            f.index,
            hosts + k as u32,
            "witnesses follow the fleet's indices"
        );
        assert_eq!(f.implementation, implementation);
        assert!(f.agrees, "witness {}: {}", f.index, f.verdict);
        assert_eq!(f.distinct, Some(s.messages_published));
        assert_eq!(f.received, Some(s.messages_published));
        assert!(f.deliveries >= f.distinct);
        assert!(!f.peers.is_empty() && f.peers.iter().all(|&p| p < hosts));
    }
    for n in &w.nodes {
        let res = n.result.as_ref().expect("the witness's result");
        assert!(res.published.is_empty(), "a witness never publishes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_witnesses_count_every_published_message_outside_the_fleets_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(PLAN, &[], tmp.path()).await;
    assert_witnessed(&out.record, 12, 2, "rust");
    let md = read(out.dir.join("report.md"));
    assert!(md.contains("## Witness") && md.contains("agrees"), "{md}");
}

/// The reference workload — discovery instead of a dial plan, a readiness wait on every
/// topic peer, lock-step publishing — with a witness dialling some hosts: the waits count the
/// witness where it is a peer, and lock-step waits only for the fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_of_the_reference_workload_leaves_its_waits_to_the_fleet() {
    let tmp = tempfile::tempdir().unwrap();
    let text = read(workspace().join("testplans/reference-simple-discovery.yaml"));
    let text = format!("{text}\nwitness: {{ implementation: rust, peers: 3 }}\n");
    let out = run_text(
        &text,
        &[("hosts", json!(8)), ("messages", json!(12))],
        tmp.path(),
    )
    .await;
    assert_witnessed(&out.record, 8, 1, "rust");
    let l = out.record.sections.lockstep.as_ref().expect("lock-step");
    for m in l.phases.iter().flat_map(|p| &p.messages) {
        assert_eq!(
            m.receivers, 7,
            "lock-step waits for the fleet's subscribers only"
        );
    }
}

/// Whether the JS node can run here; `Err` says what is missing.
fn js_node() -> Result<(), String> {
    let js = workspace().join("interop/js");
    let mut missing = Vec::new();
    if !js.join("node_modules").is_dir() {
        missing.push("the JS node's dependencies (interop/js/node_modules)".to_string());
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("node").is_file()));
    if !on_path {
        missing.push("Node.js (`node` is not on PATH)".to_string());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_witness_counts_exactly_the_messages_a_rust_fleet_published() {
    if let Err(why) = js_node() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "CI is set, so the JS node must be built (scripts/ci-extras.sh runs interop/build.sh), but: missing {why}"
            );
        }
        eprintln!("SKIPPED: missing {why}; build it with `interop/build.sh js`");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(
        PLAN,
        &[
            ("hosts", json!(15)),
            ("per_host", json!(10)),
            ("implementation", json!("js")),
            ("witnesses", json!(1)),
        ],
        tmp.path(),
    )
    .await;
    assert_witnessed(&out.record, 15, 1, "js");
    assert_eq!(out.record.summary.messages_published, 150);
}

fn invalid(text: &str) -> String {
    match plan::load_text(Path::new("w.yaml"), text, &BTreeMap::new()) {
        Ok(_) => panic!("the plan should be refused:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_witnesses_are_refused_naming_file_line_and_field() {
    let e = invalid(&PLAN.replace("implementation: ${implementation}", "implementation: java"));
    assert!(e.contains("w.yaml:8:") && e.contains("java"), "{e}");
    let e = invalid(&PLAN.replace("count: ${witnesses}", "count: 0"));
    assert!(
        e.contains("w.yaml:8:") && e.contains("witness.count"),
        "{e}"
    );
    let e = invalid(&format!("{PLAN}runner: netns\n"));
    assert!(
        e.contains("field `witness`") && e.contains("local runner"),
        "{e}"
    );
    let two = PLAN.replace(
        "    count: ${hosts}\n",
        "    count: ${hosts}\n  - id: flood\n    count: 2\n    variant: floodsub\n",
    );
    let e = invalid(&two);
    assert!(
        e.contains("field `groups[1]`") && e.contains("same `variant`"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_program_that_is_not_built_is_named_with_its_build_command() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ov = BTreeMap::new();
    ov.insert("implementation".to_string(), json!("js"));
    let loaded = plan::load_text(Path::new("w.yaml"), PLAN, &ov).expect("valid plan");
    let mut opts = options(tmp.path());
    // An interop folder without any built node.
    opts.programs.interop_dir = tmp.path().join("no-interop");
    let (_tx, rx) = watch::channel(false);
    let e = match run_plan(&loaded, &opts, rx).await {
        Ok(_) => panic!("the run should not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("w.yaml:8:") && e.contains("witness.implementation"),
        "{e}"
    );
    assert!(e.contains("interop/build.sh js"), "{e}");
    assert!(
        !tmp.path().join("witness").exists(),
        "nothing written before the run could start"
    );
}
