//! Mixed-implementation fleets (issue 9): the interop plan, 10 Rust, 10 Go and 10 JS peers in
//! one gossipsub mesh, delivers every message between every (publisher, receiver)
//! implementation pair; report.md and run.json carry the figures by implementation.
//!
//! Needs the Go and JS nodes (`interop/build.sh`). Without them the tests say so and skip,
//! except in CI (`CI` set), where scripts/ci-extras.sh has built them and they must run.

mod support;

use orchestrator::plan;
use orchestrator::record::Status;
use orchestrator::record::sections::ByImplementation;
use orchestrator::run::run_plan;
use std::collections::BTreeMap;
use std::path::PathBuf;
use support::*;
use tokio::sync::watch;

/// Whether the Go and JS nodes can run here; `Err` says what is missing.
pub fn interop_nodes() -> Result<(), String> {
    let interop = workspace().join("interop");
    let mut missing = Vec::new();
    let go = interop.join("go/bin/pubsub-node-go");
    if !go.exists() {
        missing.push(format!("the Go node ({} is not built)", go.display()));
    }
    if !interop.join("js/node_modules").is_dir() {
        missing.push("the JS node's dependencies (interop/js/node_modules is missing)".to_string());
    }
    let node_on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("node").is_file()));
    if !node_on_path {
        missing.push("Node.js (`node` is not on PATH)".to_string());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

/// True when the interop tests should run; false (after saying why) when they may skip.
fn require_interop_nodes(test: &str) -> bool {
    match interop_nodes() {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => panic!(
            "{test}: CI is set, so the Go and JS nodes must be built (scripts/ci-extras.sh runs interop/build.sh), but: missing {why}"
        ),
        Err(why) => {
            eprintln!(
                "SKIPPED {test}: missing {why}. Build them with `interop/build.sh` (needs Go 1.26+, Node.js 20+ and npm)."
            );
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_plan_delivers_everything_between_every_implementation_pair() {
    if !require_interop_nodes("interop_plan_delivers_everything_between_every_implementation_pair")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let loaded = plan::load(
        &workspace().join("testplans/interop.yaml"),
        &BTreeMap::new(),
    )
    .expect("the interop plan loads");
    let per_impl = loaded.plan.groups.iter().map(|g| g.count).min().unwrap();
    assert!(per_impl >= 10, "at least 10 peers of each implementation");
    let mut opts = options(tmp.path());
    opts.run_id = Some(format!("interop-{}", std::process::id()));
    let (_tx, rx) = watch::channel(false);
    let out = run_plan(&loaded, &opts, rx)
        .await
        .expect("the run completes");
    assert_run_gone(opts.run_id.as_deref().unwrap());

    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    assert_eq!(r.summary.delivery_ratio, Some(1.0));
    for imp in ["rust", "go", "js"] {
        assert_eq!(
            r.nodes.iter().filter(|n| n.implementation == imp).count() as u32,
            per_impl,
            "{imp} nodes"
        );
        assert!(
            r.versions.node_implementations.contains_key(imp),
            "{imp} said hello with its version"
        );
    }

    let b: ByImplementation = r
        .sections
        .implementations
        .clone()
        .expect("figures by implementation in run.json");
    let labels: Vec<&str> = b.implementations.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(labels, ["rust", "go", "js"]);
    for p in ["rust", "go", "js"] {
        for q in ["rust", "go", "js"] {
            let pair = b
                .pairs
                .iter()
                .find(|x| x.publisher == p && x.receiver == q)
                .unwrap_or_else(|| panic!("no pair {p} → {q}"));
            let same = u64::from(p == q);
            let expected = u64::from(per_impl)
                * (u64::from(per_impl) - same)
                * u64::from(messages(&loaded.plan));
            assert_eq!(pair.expected, expected, "{p} → {q}");
            assert_eq!(
                pair.delivery_ratio,
                Some(1.0),
                "{p} → {q}: {} of {}",
                pair.delivered,
                pair.expected
            );
            let l = pair.latency.unwrap_or_else(|| panic!("latency {p} → {q}"));
            assert_eq!(
                l.count, expected,
                "one latency sample per delivery, {p} → {q}"
            );
            assert!(l.p50_ms <= l.p99_ms);
        }
    }
    for f in &b.implementations {
        assert_eq!(f.nodes, per_impl);
        assert_eq!(
            f.peak_rss_bytes.count,
            u64::from(per_impl),
            "{}: RSS of every node",
            f.label
        );
        assert!(f.peak_rss_bytes.median > 1e6, "{}: RSS in bytes", f.label);
        assert!(f.cpu_s.median > 0.0, "{}: CPU", f.label);
    }

    let md = read(out.dir.join("report.md"));
    assert!(md.contains("## By implementation"), "{md}");
    assert!(
        md.contains("| js → rust |") && md.contains("| rust | 1.0000"),
        "{md}"
    );
    // report.html carries the same tables.
    let html = read(out.dir.join("report.html"));
    assert!(
        html.contains("By implementation") && html.contains("js → rust"),
        "report.html lacks the by-implementation section"
    );
    // Re-rendering from run.json alone gives the same report.
    let again = orchestrator::report::markdown(
        &orchestrator::record::store::read_record(&out.dir).unwrap(),
    )
    .unwrap();
    assert_eq!(again, md);
}

fn messages(plan: &testbed_contract::plan::Plan) -> u32 {
    plan.workload
        .iter()
        .filter_map(|p| match p {
            testbed_contract::plan::Phase::Publish(p) => Some(p.count),
            _ => None,
        })
        .sum()
}

/// A single-implementation run has no section by implementation (and stores nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_only_run_has_no_section_by_implementation() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "version: 1\nname: rust-only\ngroups:\n  - id: a\n    count: 2\n  - id: b\n    count: 2\nworkload:\n  - subscribe: {topics: [t]}\n  - publish: {topic: t, count: 3}\n  - settle: {}\n";
    let out = run_text(text, &[], tmp.path()).await;
    assert_eq!(
        out.record.outcome.status,
        Status::Passed,
        "{:?}",
        out.record.outcome.reasons
    );
    assert!(out.record.sections.implementations.is_none());
    assert!(!read(out.dir.join("report.md")).contains("By implementation"));
}

/// A Go version that is not built is an error before anything starts, naming the command that
/// builds it; no Go or Node is needed to see it.
#[test]
fn a_missing_go_version_is_refused_before_launch_with_the_build_command() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("p.yaml");
    std::fs::write(
        &plan,
        "version: 1\nname: missing-go\ngroups:\n  - id: r\n    count: 1\n  - id: g\n    count: 1\n    implementation: go\n    impl_version: v0.0.1-not-built\nworkload:\n  - subscribe: {topics: [t]}\n",
    )
    .unwrap();
    let out = std::process::Command::new(orchestrator_bin())
        .args(["run", plan.to_str().unwrap(), "--quiet", "--results"])
        .arg(tmp.path().join("results"))
        .arg("--node-bin")
        .arg(node_bin())
        .arg("--interop-dir")
        .arg(workspace().join("interop"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("pubsub-node-go-v0.0.1-not-built")
            && stderr.contains("interop/go/build.sh v0.0.1-not-built"),
        "{stderr}"
    );
}

/// Every plan of issue 9 loads; the version benchmark sweeps `impl_version` through `pubsub`.
#[test]
fn the_interop_and_go_version_plans_load() {
    for name in [
        "interop.yaml",
        "bench-go-pubsub-versions.yaml",
        "bench-go-pubsub-versions-quick.yaml",
    ] {
        let path: PathBuf = workspace().join("testplans").join(name);
        let l = plan::load(&path, &BTreeMap::new()).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.starts_with("bench") {
            let m = l.plan.matrix.as_ref().expect("a matrix");
            assert_eq!(m.compare.as_deref(), Some("pubsub"), "{name}");
            assert_eq!(m.params["pubsub"].len(), 2, "{name}: two versions");
            let v = plan::load(
                &path,
                &BTreeMap::from([("pubsub".to_string(), serde_json::json!("v0.14.2"))]),
            )
            .unwrap();
            assert_eq!(
                v.plan.groups[0].impl_version.as_deref(),
                Some("v0.14.2"),
                "{name}"
            );
        }
    }
}
