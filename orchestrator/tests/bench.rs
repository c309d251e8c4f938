//! `orchestrator bench` end to end with real nodes: a 2×2 matrix (hosts 3, 4 × gossipsub,
//! floodsub) with 3 iterations and a warm-up run. Its outputs exist, every chart is
//! well-formed SVG with one series per (messages, variant), `orchestrator report` reproduces
//! every file byte for byte from bench.json, `--resume` adds only the missing runs, and the
//! HTML report renders in headless Chromium.

mod support;

use orchestrator::bench::matrix::Slot;
use orchestrator::bench::runner::BenchError;
use orchestrator::bench::{BenchOptions, BenchRecord, run_bench};
use orchestrator::record::Status;
use orchestrator::runner::program::Programs;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;
use tokio::sync::watch;

const PLAN: &str = r#"
version: 1
name: bench-tiny
seed: 7
timeout: 60s
params:
  hosts: 3
  messages: 3
  variant: gossipsub
groups:
  - id: hosts
    count: ${hosts}
    variant: ${variant}
    gossipsub:
      heartbeat: 200ms
topology:
  kind: full
workload:
  - subscribe:
      topics: [discovery]
      nodes: "1.."
  - publish:
      topic: discovery
      nodes: 0
      count: 1
  - publish:
      topic: discovery
      count: ${messages}
  - settle:
      timeout: 10s
assertions:
  - delivery_ratio >= 1.0
matrix:
  params:
    hosts: [3, 4]
    messages: [3]
    variant: [gossipsub, floodsub]
  compare: variant
  iterations: 3
  warmup: 1
"#;

const LABELS: [&str; 2] = ["messages=3, gossipsub", "messages=3, floodsub"];

fn options(plan: &Path, results: &Path) -> BenchOptions {
    BenchOptions {
        plan: plan.to_path_buf(),
        overrides: BTreeMap::new(),
        results_root: results.to_path_buf(),
        resume: None,
        programs: Programs::discover(Some(node_bin()), Some(workspace().join("interop"))),
        command: vec![
            "orchestrator".into(),
            "bench".into(),
            "bench-tiny.yaml".into(),
        ],
        quiet: true,
        iterations: None,
        warmup: None,
        bench_id: Some("tiny".into()),
    }
}

fn no_interrupt() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    rx
}

/// Every file the bench renders, relative path → bytes.
fn rendered(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for name in ["bench.md", "report.html", "bench.csv"] {
        files.insert(name.to_string(), std::fs::read(dir.join(name)).unwrap());
    }
    for e in std::fs::read_dir(dir.join("charts")).unwrap() {
        let p = e.unwrap().path();
        files.insert(
            format!("charts/{}", p.file_name().unwrap().to_string_lossy()),
            std::fs::read(&p).unwrap(),
        );
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_matrix_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("bench-tiny.yaml");
    std::fs::write(&plan, PLAN).unwrap();
    let results = tmp.path().join("results");

    let out = run_bench(&options(&plan, &results), no_interrupt())
        .await
        .expect("bench runs");
    let dir = out.dir.clone();
    assert_eq!(dir, results.join("bench-tiny/tiny"));
    assert!(!out.interrupted);
    let rec = BenchRecord::load(&dir).unwrap();
    assert!(rec.complete);
    assert_eq!(rec.cells.len(), 4);
    assert_eq!(rec.runs.len(), 13, "4 cells × 3 iterations + 1 warm-up");
    assert_eq!(rec.runs.iter().filter(|r| r.warmup).count(), 1);
    for r in &rec.runs {
        assert!(
            dir.join(&r.dir).join("run.json").is_file(),
            "{} has no run.json",
            r.dir
        );
        assert!(
            dir.join(&r.dir).join("report.html").is_file(),
            "{} has no report.html",
            r.dir
        );
        assert_ne!(r.status, Status::Interrupted);
        // Tiny fleets on loopback deliver everything, whatever else made a run fail: the count
        // is checked against the test's own arithmetic for every run, not only for runs whose
        // plan assertion (`delivery_ratio >= 1.0`) already passed.
        let cell = rec.cells.iter().find(|c| c.index == r.cell).unwrap();
        let hosts = cell.params["hosts"].as_u64().unwrap();
        let messages = cell.params["messages"].as_u64().unwrap();
        // Host 0 publishes 1 + messages to the hosts − 1 subscribers; every other host
        // publishes `messages` to the hosts − 2 other subscribers.
        let expected = (1 + messages) * (hosts - 1) + (hosts - 1) * messages * (hosts - 2);
        assert_eq!(
            (r.figures.delivered, r.figures.expected_deliveries),
            (expected, expected),
            "{}: every message reaches every subscriber",
            r.run_id
        );
        assert_eq!(r.figures.delivery_ratio, Some(1.0), "{}", r.run_id);
        if r.status != Status::Passed {
            assert!(
                !r.reasons.is_empty(),
                "{}: failed without a reason",
                r.run_id
            );
            eprintln!("note: {} {:?}: {:?}", r.run_id, r.status, r.reasons);
        }
    }
    let failed = rec.recorded().filter(|r| r.failed()).count();
    let hosts4 = rec
        .cells
        .iter()
        .find(|c| c.key() == "hosts=4 messages=3 variant=floodsub")
        .unwrap();
    let r = rec.runs_of(hosts4.index).next().unwrap();
    // 1 + 3 from host 0 to 3 subscribers, 3 from each other host to 2 other subscribers.
    assert_eq!(r.figures.expected_deliveries, 4 * 3 + 3 * 3 * 2);

    // Outputs.
    let files = rendered(&dir);
    let csv = String::from_utf8(files["bench.csv"].clone()).unwrap();
    assert_eq!(csv.lines().count(), 1 + 13);
    assert!(csv.starts_with("run_id,warmup,iteration,hosts,messages,variant,status,"));
    let md = String::from_utf8(files["bench.md"].clone()).unwrap();
    assert!(
        md.starts_with("# Bench: bench-tiny — gossipsub vs floodsub\n"),
        "{md}"
    );
    assert!(md.contains("## Comparison: floodsub vs gossipsub (by variant)"));
    let failed_line = if failed == 0 {
        "| failed runs | 0 of 12 |".to_string()
    } else {
        format!("| failed runs | **{failed} of 12 (")
    };
    assert!(
        md.contains(&failed_line),
        "bench.md does not count {failed} failed runs"
    );
    assert!(md.contains("![Latency p99](charts/latency_p99.svg)"));
    let charts: Vec<&String> = files.keys().filter(|k| k.starts_with("charts/")).collect();
    assert_eq!(charts.len(), 11, "{charts:?}");
    for name in &charts {
        assert!(
            md.contains(&format!("]({name})")),
            "bench.md does not embed {name}"
        );
        let svg = String::from_utf8(files[*name].clone()).unwrap();
        let doc =
            roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name} is not XML: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        for label in LABELS {
            assert_eq!(
                texts.iter().filter(|t| **t == label).count(),
                1,
                "{name}: series `{label}` in {texts:?}"
            );
        }
        let legend_entries = texts.iter().filter(|t| t.starts_with("messages=")).count();
        assert_eq!(
            legend_entries, 2,
            "{name}: one series per (messages, variant)"
        );
    }
    let html = String::from_utf8(files["report.html"].clone()).unwrap();
    assert_eq!(html.matches("<figure").count(), 11);
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src=\"http"));

    // `orchestrator report DIR` re-renders every file byte for byte from bench.json.
    for name in files.keys() {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    let status = Command::new(orchestrator_bin())
        .arg("report")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).trim(),
        dir.join("bench.md").display().to_string()
    );
    let again = rendered(&dir);
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &files {
        assert!(
            again[name] == *bytes,
            "{name} differs after `orchestrator report`"
        );
    }

    // --resume with one more iteration runs only the 4 missing runs and keeps the others.
    let mut resume = options(&plan, &results);
    resume.resume = Some(dir.clone());
    resume.iterations = Some(4);
    let out = run_bench(&resume, no_interrupt())
        .await
        .expect("resumed bench runs");
    assert_eq!(out.record.runs.len(), 17);
    assert_eq!(
        out.record.runs[..13]
            .iter()
            .map(|r| &r.run_id)
            .collect::<Vec<_>>(),
        rec.runs.iter().map(|r| &r.run_id).collect::<Vec<_>>()
    );
    assert!(out.record.runs[13..].iter().all(|r| r.slot()
        == Slot {
            warmup: false,
            cell: r.cell,
            iteration: 3
        }));
    assert!(out.record.wall_s > rec.wall_s);

    // A changed plan is not resumed; a plan without a matrix is no bench.
    std::fs::write(&plan, PLAN.replace("seed: 7", "seed: 8")).unwrap();
    let err = run_bench(&resume, no_interrupt())
        .await
        .err()
        .expect("changed plan refused");
    assert!(
        matches!(
            err.downcast_ref::<BenchError>(),
            Some(BenchError::PlanChanged { .. })
        ),
        "{err:#}"
    );
    let single = tmp.path().join("single.yaml");
    std::fs::write(&single, &PLAN[..PLAN.find("matrix:").unwrap()]).unwrap();
    let err = run_bench(&options(&single, &results), no_interrupt())
        .await
        .err()
        .expect("no matrix refused");
    assert!(
        matches!(
            err.downcast_ref::<BenchError>(),
            Some(BenchError::NoMatrix { .. })
        ),
        "{err:#}"
    );

    screenshot(&dir);
}

/// scripts/screenshot-report.sh renders report.html in headless Chromium. Skipped where no
/// Chromium is installed, except in CI (`CI=true`), where it must be.
fn screenshot(dir: &Path) {
    let chromium = ["chromium", "chromium-browser"].iter().any(|b| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {b}"))
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !chromium {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have chromium (Debian package `chromium`) to check that report.html renders"
        );
        eprintln!("skipping the screenshot: no chromium (apt-get install chromium)");
        return;
    }
    let png: PathBuf = dir.join("screenshot.png");
    let out = Command::new(workspace().join("scripts/screenshot-report.sh"))
        .arg(dir)
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "screenshot failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!(width, 1280);
    // The page holds eleven charts of 460 px or more, one under the other: a page this tall
    // was laid out with all of them.
    assert!(height > 11 * 460, "screenshot only {height} px tall");
}
