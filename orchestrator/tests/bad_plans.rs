//! Malformed plans: each gives an error naming file, line and field, and starts nothing.

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

/// Replaces `from` in the good plan with `to` (which must change it).
fn variant(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "`{from}` not in the good plan");
    GOOD.replacen(from, to, 1)
}

fn error_of(text: &str) -> PlanError {
    plan::load_text(Path::new("bad.yaml"), text, &BTreeMap::new())
        .expect_err("plan must be refused")
}

/// (what, plan text, expected line, expected field fragment, expected message fragment)
fn cases() -> Vec<(&'static str, String, u32, &'static str, &'static str)> {
    vec![
        (
            "bad YAML",
            variant("      topics: [t]", "      topics: [t"),
            11,
            "",
            "",
        ),
        (
            "unknown top-level field",
            variant("workload:", "worklaod:"),
            8,
            "",
            "worklaod",
        ),
        (
            "unknown nested field",
            variant("    count: ${n}", "    cuont: 3"),
            7,
            "groups[0]",
            "cuont",
        ),
        (
            "wrong type",
            variant("    count: ${n}", "    count: many"),
            7,
            "groups[0].count",
            "",
        ),
        (
            "negative count",
            variant("    count: ${n}", "    count: -5"),
            7,
            "groups[0].count",
            "",
        ),
        (
            "zero count",
            variant("    count: ${n}", "    count: 0"),
            7,
            "groups[0].count",
            "at least 1",
        ),
        (
            "unknown variant",
            variant("    count: ${n}", "    count: 3\n    variant: meshsub"),
            8,
            "groups[0].variant",
            "meshsub",
        ),
        (
            "missing groups",
            variant("groups:\n  - id: peers\n    count: ${n}\n", ""),
            1,
            "",
            "groups",
        ),
        (
            "unknown group in a phase",
            variant(
                "      topics: [t]",
                "      topics: [t]\n      groups: [ghosts]",
            ),
            11,
            "workload[0].subscribe.groups[0]",
            "ghosts",
        ),
        (
            "node index past the fleet",
            variant("      count: 2", "      count: 2\n      nodes: 7"),
            14,
            "workload[1].publish.nodes",
            "3 nodes",
        ),
        (
            "duration without unit",
            variant("name: ok", "name: ok\ntimeout: 5"),
            3,
            "timeout",
            "unit",
        ),
        (
            "unknown assertion metric",
            format!("{GOOD}assertions:\n  - speed >= 3\n"),
            15,
            "assertions[0]",
            "unknown metric",
        ),
        (
            "undeclared parameter",
            variant("count: ${n}", "count: ${hosts}"),
            7,
            "",
            "hosts",
        ),
        (
            "publish to a topic nobody subscribes",
            variant("      topic: t", "      topic: other"),
            12,
            "workload[1].publish.topic",
            "no earlier phase",
        ),
        (
            "mesh bounds",
            variant(
                "    count: ${n}",
                "    count: 3\n    gossipsub:\n      mesh_n_low: 9",
            ),
            8,
            "groups[0].gossipsub",
            "mesh_n_low",
        ),
        (
            "duplicate group id",
            variant(
                "    count: ${n}\n",
                "    count: 3\n  - id: peers\n    count: 1\n",
            ),
            8,
            "groups[1].id",
            "twice",
        ),
        (
            "unsupported schema version",
            variant("version: 1", "version: 2"),
            1,
            "version",
            "version 2",
        ),
        (
            "lock-step publishing with a rate",
            variant(
                "      count: 2",
                "      count: 2\n      mode: lockstep\n      rate: 5",
            ),
            15,
            "workload[1].publish.rate",
            "one message at a time",
        ),
        (
            "a per-message timeout without lock-step",
            variant("      count: 2", "      count: 2\n      message_timeout: 1s"),
            14,
            "workload[1].publish.message_timeout",
            "lockstep",
        ),
        (
            "a topology connecting groups of different security",
            variant(
                "    count: ${n}\n",
                "    count: ${n}\n  - id: open\n    count: 2\n    security: plaintext\n",
            ),
            10,
            "groups[1].security",
            "peers of different security cannot connect",
        ),
        (
            "discovery connecting groups of different security",
            variant(
                "    count: ${n}\n",
                "    count: ${n}\n  - id: open\n    count: 2\n    security: plaintext\ntopology:\n  kind: none\n",
            )
            .replacen("      topics: [t]\n", "      topics: [t]\n      discover: true\n", 1),
            16,
            "workload[0].subscribe.discover",
            "uses plaintext security and group `peers` noise",
        ),
        (
            "message smaller than its header",
            variant("      count: 2", "      count: 2\n      size: 10"),
            14,
            "workload[1].publish.size",
            "header",
        ),
    ]
}

#[test]
fn good_plan_is_accepted() {
    plan::load_text(Path::new("ok.yaml"), GOOD, &BTreeMap::new()).expect("the base plan is valid");
}

#[test]
fn every_malformed_plan_names_line_and_field() {
    let mut failures = Vec::new();
    for (what, text, line, field, message) in cases() {
        let err = error_of(&text);
        let issue = err
            .issues()
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("{what}: no issue in {err}"));
        let shown = err.to_string();
        let ok = issue.line == Some(line)
            && issue.field.contains(field)
            && shown.contains(message)
            && shown.contains(&format!("bad.yaml:{line}"));
        if !ok {
            failures.push(format!(
                "{what}: expected line {line}, field ~`{field}`, message ~`{message}`; got: {shown}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn unknown_override_is_refused() {
    let ov = BTreeMap::from([("hosts".to_string(), serde_json::json!(5))]);
    let err = plan::load_text(Path::new("bad.yaml"), GOOD, &ov).unwrap_err();
    assert!(err.to_string().contains("does not declare"), "{err}");
}

/// Through the binary: exit code 64, the error on stderr, no results folder, no process.
#[test]
fn run_refuses_a_bad_plan_and_starts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("bad.yaml");
    std::fs::write(&plan, variant("    count: ${n}", "    count: -5")).unwrap();
    let results = tmp.path().join("results");
    let out = std::process::Command::new(orchestrator_bin())
        .args([
            "run",
            plan.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--node-bin",
        ])
        .arg(node_bin())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:7") && stderr.contains("groups[0].count"),
        "{stderr}"
    );
    assert!(
        !results.exists(),
        "nothing may be written for an invalid plan"
    );
}

/// `--runner` is part of the plan as validated: `run regions.yaml --runner local` would run
/// without shaping while the report showed the configured network, so it is refused like
/// `runner: local` would be — naming the flag — and nothing is written.
#[test]
fn a_runner_override_the_plan_cannot_use_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let out = std::process::Command::new(orchestrator_bin())
        .current_dir(workspace())
        .args([
            "run",
            "testplans/regions.yaml",
            "--runner",
            "local",
            "--results",
        ])
        .arg(&results)
        .arg("--node-bin")
        .arg(node_bin())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("testplans/regions.yaml:")
            && stderr.contains("field `network`")
            && stderr.contains("`--runner local`")
            && stderr.contains("does not shape links"),
        "{stderr}"
    );
    assert!(
        !results.exists(),
        "nothing may be written for a refused run"
    );

    // The same through the library; the plan's own runner is accepted.
    let path = workspace().join("testplans/regions.yaml");
    let local = plan::Overrides {
        runner: Some(plan::RunnerChoice::Local),
        ..plan::Overrides::default()
    };
    assert!(plan::load_with(&path, &local).is_err());
    assert!(plan::load_with(&path, &plan::Overrides::default()).is_ok());
}

/// A telemetry flag is validated with the plan and named in the error.
#[test]
fn a_bad_telemetry_flag_is_refused_naming_it() {
    let ov = plan::Overrides {
        telemetry: plan::TelemetryOverrides {
            sample_ratio: Some(2.0),
            ..Default::default()
        },
        ..plan::Overrides::default()
    };
    let err = plan::load_text_with(Path::new("ok.yaml"), GOOD, &ov).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("telemetry.sample_ratio")
            && shown.contains("not a fraction")
            && shown.contains("`--sample-ratio`"),
        "{shown}"
    );
}
