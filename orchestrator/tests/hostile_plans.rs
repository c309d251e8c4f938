//! Plans a hostile or careless author could write that once validated and then crashed,
//! hung, leaked outside `results/` or silently changed the run: each is refused with
//! file:line:column and the field, and nothing starts. With `bad_plans.rs` these are more
//! than 40 malformed plans.

mod support;

use orchestrator::plan::{self, PlanError};
use std::collections::BTreeMap;
use std::path::Path;
use support::*;

const GOOD: &str = "\
version: 1
name: ok
params:
  n: 3
  t: t
groups:
  - id: peers
    count: ${n}
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 2
";

/// A churn phase appended to the good plan, with `extra` lines inside it.
fn churn(extra: &str) -> String {
    format!("{GOOD}  - churn:\n      duration: 10s\n      heartbeat: 1s\n{extra}")
}

fn variant(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "`{from}` not in the good plan");
    GOOD.replacen(from, to, 1)
}

fn load(
    text: &str,
    ov: &BTreeMap<String, serde_json::Value>,
) -> Result<plan::LoadedPlan, PlanError> {
    plan::load_text(Path::new("bad.yaml"), text, ov)
}

/// (what, plan text, a text on the line the error must name, field fragment, message
/// fragment).
fn cases() -> Vec<(
    &'static str,
    String,
    &'static str,
    &'static str,
    &'static str,
)> {
    let long = "a".repeat(101);
    vec![
        (
            "timeout beyond a week",
            variant("name: ok", "name: ok\ntimeout: 30d"),
            "timeout: 30d",
            "timeout",
            "longest",
        ),
        (
            "timeout of 5e11 years",
            variant("name: ok", "name: ok\ntimeout: 500000000000y"),
            "timeout:",
            "timeout",
            "",
        ),
        (
            "zero timeout",
            variant("name: ok", "name: ok\ntimeout: 0s"),
            "timeout: 0s",
            "timeout",
            "longer than 0s",
        ),
        (
            "wait beyond a week",
            format!("{GOOD}  - wait: 30d\n"),
            "wait: 30d",
            "workload[2].wait",
            "longest",
        ),
        (
            "zero wait",
            format!("{GOOD}  - wait: 0s\n"),
            "wait: 0s",
            "workload[2].wait",
            "longer than 0s",
        ),
        (
            "settle beyond a week",
            format!("{GOOD}  - settle:\n      timeout: 30d\n"),
            "timeout: 30d",
            "workload[2].settle.timeout",
            "longest",
        ),
        (
            "mesh timeout beyond a week",
            variant(
                "      topics: [t]",
                "      topics: [t]\n      mesh_timeout: 30d",
            ),
            "mesh_timeout",
            "workload[0].subscribe.mesh_timeout",
            "longest",
        ),
        (
            "metrics linger beyond a week",
            format!("{GOOD}telemetry:\n  metrics_linger: 30d\n"),
            "metrics_linger",
            "telemetry.metrics_linger",
            "longest",
        ),
        (
            "snapshot interval of 1 ms",
            format!("{GOOD}telemetry:\n  snapshot_interval: 1ms\n"),
            "snapshot_interval",
            "telemetry.snapshot_interval",
            "at least",
        ),
        (
            "publish rate 1e-300",
            variant("      count: 2", "      count: 2\n      rate: 1.0e-300"),
            "rate:",
            "workload[1].publish.rate",
            "between",
        ),
        (
            "publish rate 1e9",
            variant("      count: 2", "      count: 2\n      rate: 1.0e9"),
            "rate:",
            "workload[1].publish.rate",
            "between",
        ),
        (
            "publish rate NaN",
            variant("      count: 2", "      count: 2\n      rate: .nan"),
            "rate:",
            "",
            "non-finite",
        ),
        (
            "negative publish rate",
            variant("      count: 2", "      count: 2\n      rate: -1"),
            "rate:",
            "workload[1].publish.rate",
            "positive",
        ),
        (
            "publish count 4294967295",
            variant("      count: 2", "      count: 4294967295"),
            "count: 4294967295",
            "workload[1].publish.count",
            "at most",
        ),
        (
            "zero publish count",
            variant("      count: 2", "      count: 0"),
            "count: 0",
            "workload[1].publish.count",
            "at least 1",
        ),
        (
            "message size 4294967295",
            variant("      count: 2", "      count: 2\n      size: 4294967295"),
            "size:",
            "workload[1].publish.size",
            "between",
        ),
        (
            "node index 4294967295",
            variant("      count: 2", "      count: 2\n      nodes: 4294967295"),
            "nodes:",
            "workload[1].publish.nodes",
            "3 nodes",
        ),
        (
            "node selector text 4294967295",
            variant(
                "      count: 2",
                "      count: 2\n      nodes: \"4294967295\"",
            ),
            "nodes:",
            "workload[1].publish.nodes",
            "",
        ),
        (
            "node range reversed",
            variant("      count: 2", "      count: 2\n      nodes: 2..1"),
            "nodes:",
            "workload[1].publish.nodes",
            "selector",
        ),
        (
            "empty topic",
            variant("      topics: [t]", "      topics: [\"\"]"),
            "topics:",
            "workload[0].subscribe.topics",
            "none empty",
        ),
        (
            "gossipsub heartbeat of 1 ns",
            variant(
                "    count: ${n}",
                "    count: 3\n    gossipsub:\n      heartbeat: 1ns",
            ),
            "heartbeat:",
            "groups[0].gossipsub.heartbeat",
            "at least",
        ),
        (
            "gossipsub heartbeat beyond a week",
            variant(
                "    count: ${n}",
                "    count: 3\n    gossipsub:\n      heartbeat: 30d",
            ),
            "heartbeat:",
            "groups[0].gossipsub.heartbeat",
            "longest",
        ),
        (
            "fanout ttl beyond a week",
            variant(
                "    count: ${n}",
                "    count: 3\n    gossipsub:\n      fanout_ttl: 30d",
            ),
            "fanout_ttl",
            "groups[0].gossipsub.fanout_ttl",
            "longest",
        ),
        (
            "transmit size of 4 GiB",
            variant(
                "    count: ${n}",
                "    count: 3\n    gossipsub:\n      max_transmit_size: 4294967295",
            ),
            "max_transmit_size",
            "groups[0].gossipsub.max_transmit_size",
            "at most",
        ),
        (
            "plan name ..",
            variant("name: ok", "name: \"..\""),
            "name:",
            "name",
            "usable name",
        ),
        (
            "plan name .",
            variant("name: ok", "name: \".\""),
            "name:",
            "name",
            "usable name",
        ),
        (
            "plan name with a slash",
            variant("name: ok", "name: ../../x"),
            "name:",
            "name",
            "usable name",
        ),
        (
            "empty plan name",
            variant("name: ok", "name: \"\""),
            "name:",
            "name",
            "usable name",
        ),
        (
            "plan name of 101 characters",
            variant("name: ok", &format!("name: {long}")),
            "name:",
            "name",
            "usable name",
        ),
        (
            "parameter injecting a field",
            variant("  n: 3", "  n: \"2, variant: floodsub\""),
            "count: ${n}",
            "groups[0].count",
            "",
        ),
        (
            "parameter injecting a list item",
            variant("      topics: [t]", "      topics: [${t}]").replace("  t: t", "  t: \"t, u\""),
            "topics: [${t}]",
            "params.t",
            "substituted as a value",
        ),
        (
            "zero random degree",
            format!("{GOOD}topology:\n  kind: random\n  degree: 0\n"),
            "degree: 0",
            "topology.degree",
            "at least 1",
        ),
        (
            "churn heartbeat of 1 ns",
            churn("").replace("heartbeat: 1s", "heartbeat: 1ns"),
            "heartbeat: 1ns",
            "workload[2].churn.heartbeat",
            "at least",
        ),
        (
            "churn duration beyond a week",
            churn("").replace("duration: 10s", "duration: 300d"),
            "duration: 300d",
            "workload[2].churn.duration",
            "longest",
        ),
        (
            "churn delivery window beyond a week",
            churn("      delivery_window: 30d\n"),
            "delivery_window",
            "workload[2].churn.delivery_window",
            "longest",
        ),
        (
            "churn events per heartbeat",
            churn("      frequencies:\n        add_peer: 4000000000\n"),
            "add_peer",
            "workload[2].churn.frequencies.add_peer",
            "at most",
        ),
        (
            "churn peer limit",
            churn("      limits:\n        max_peers: 4000000000\n"),
            "max_peers",
            "workload[2].churn.limits.max_peers",
            "at most",
        ),
        (
            "churn live line faster than the heartbeat",
            churn("      live_every: 1ms\n"),
            "live_every",
            "workload[2].churn.live_every",
            "heartbeat",
        ),
    ]
}

#[test]
fn every_hostile_plan_is_refused_with_file_line_column_and_field() {
    let mut failures = Vec::new();
    let cases = cases();
    for (what, text, marker, field, message) in &cases {
        let line = text
            .lines()
            .position(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("{what}: marker `{marker}` not in the plan"))
            as u32
            + 1;
        let err = match load(text, &BTreeMap::new()) {
            Ok(_) => {
                failures.push(format!("{what}: accepted"));
                continue;
            }
            Err(e) => e,
        };
        let Some(issue) = err.issues().first().cloned() else {
            failures.push(format!("{what}: no issue in {err}"));
            continue;
        };
        let shown = err.to_string();
        let ok = issue.line == Some(line)
            && issue.column.is_some()
            && issue.field.contains(field)
            && shown.contains(message)
            && shown.contains(&format!("bad.yaml:{line}:{}", issue.column.unwrap_or(0)));
        if !ok {
            failures.push(format!(
                "{what}: expected line {line}, field ~`{field}`, message ~`{message}`; got line {:?} field `{}`: {shown}",
                issue.line, issue.field
            ));
        }
    }
    assert!(cases.len() >= 30, "{} cases", cases.len());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A parameter is a value: a `--set` or matrix value holding YAML cannot add a field.
#[test]
fn an_override_cannot_change_the_plans_structure() {
    let with_t = variant("      topics: [t]", "      topics: [${t}]");
    for (text, name, value) in [
        (GOOD.to_string(), "n", "2, variant: floodsub"),
        (GOOD.to_string(), "n", "2\n    variant: floodsub"),
        (with_t.clone(), "t", "t]\n      nodes: 0..1 #"),
    ] {
        let ov = BTreeMap::from([(name.to_string(), serde_json::json!(value))]);
        match load(&text, &ov) {
            Err(e) => assert!(e.issues().first().is_some_and(|i| i.line.is_some()), "{e}"),
            Ok(l) => panic!("accepted {value:?}: {:?}", l.plan.groups[0].variant),
        }
    }
    // A plain value still works, as a value.
    let ov = BTreeMap::from([("n".to_string(), serde_json::json!(5))]);
    assert_eq!(load(GOOD, &ov).unwrap().plan.groups[0].count, 5);
}

/// `--run-id ../../x` or `.` would write outside `results/`: refused before anything starts,
/// exit 64.
#[test]
fn a_run_id_leaving_the_results_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("ok.yaml");
    std::fs::write(&plan, GOOD).unwrap();
    let results = tmp.path().join("deep/results");
    for id in ["../../escaped", ".", "..", "a/b", ""] {
        let out = std::process::Command::new(orchestrator_bin())
            .args(["run", plan.to_str().unwrap(), "--run-id", id, "--results"])
            .arg(&results)
            .arg("--node-bin")
            .arg(node_bin())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "run id {id:?}: {stderr}");
        assert!(stderr.contains("run id"), "{stderr}");
        assert!(!results.exists(), "run id {id:?} wrote something");
        assert!(!tmp.path().join("escaped").exists());
    }
}

/// A few hostile plans through the binary: exit 64, nothing written, no process.
#[test]
fn the_binary_refuses_hostile_plans_and_starts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    for (i, (what, text, _, _, _)) in cases().into_iter().enumerate().step_by(6) {
        let plan = tmp.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&plan, &text).unwrap();
        let out = std::process::Command::new(orchestrator_bin())
            .args(["run", plan.to_str().unwrap(), "--results"])
            .arg(&results)
            .arg("--node-bin")
            .arg(node_bin())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!("bad-{i}.yaml:")),
            "{what}: {stderr}"
        );
        assert!(!results.exists(), "{what}: something was written");
    }
}
