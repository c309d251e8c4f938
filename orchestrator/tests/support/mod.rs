//! Shared helpers for the orchestrator's integration tests: real node binaries, temporary
//! results folders, and checks that no node process outlived a run.
#![allow(dead_code)]

use orchestrator::plan;
use orchestrator::run::{RunOptions, RunOutput, run_plan};
use orchestrator::runner::program::Programs;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::sync::watch;

/// The `pubsub-node` binary of this build (`cargo test --workspace` builds it).
pub fn node_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/pubsub-node
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("pubsub-node");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p pubsub-node` first)",
        bin.display()
    );
    bin
}

pub fn orchestrator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orchestrator"))
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn options(results: &Path) -> RunOptions {
    RunOptions {
        results_root: results.to_path_buf(),
        programs: Programs::discover(Some(node_bin()), Some(workspace().join("interop"))),
        command: vec!["test".into()],
        quiet: true,
        run_id: Some("test".into()),
        runner: None,
        control_listen: None,
    }
}

/// Loads plan text (as if from `name`) with overrides and runs it.
pub async fn run_text(
    text: &str,
    overrides: &[(&str, serde_json::Value)],
    results: &Path,
) -> RunOutput {
    let ov: BTreeMap<String, serde_json::Value> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let loaded = plan::load_text(Path::new("test-plan.yaml"), text, &ov).expect("valid plan");
    let (_tx, rx) = watch::channel(false);
    let out = run_plan(&loaded, &options(results), rx)
        .await
        .expect("run completes");
    assert_no_node_left(&out);
    out
}

/// Whether `pid` has exited: gone, or a zombie (exited, not yet reaped by its parent).
pub fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

/// The live processes of run `run_id` — every process the runner started carries
/// `TESTBED_RUN_ID` in its environment — as (pid, `TESTBED_NODE_INDEX` where set).
pub fn run_processes(run_id: &str) -> Vec<(u32, Option<u32>)> {
    let want = format!("TESTBED_RUN_ID={run_id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
            if !vars.contains(&want.as_bytes()) || exited(pid) {
                return None;
            }
            let index = vars
                .iter()
                .find_map(|v| v.strip_prefix(b"TESTBED_NODE_INDEX="))
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
            Some((pid, index))
        })
        .collect()
}

/// The pid of node `index` of run `run_id`, while it runs.
pub fn find_node(run_id: &str, index: u32) -> Option<u32> {
    run_processes(run_id)
        .into_iter()
        .find_map(|(pid, i)| (i == Some(index)).then_some(pid))
}

/// No process of run `run_id` is left.
pub fn assert_run_gone(run_id: &str) {
    let left = run_processes(run_id);
    assert!(left.is_empty(), "processes outlived the run: {left:?}");
}

/// Every node process of the run is gone (pids from run.json, checked against /proc).
pub fn assert_no_node_left(out: &RunOutput) {
    for n in &out.record.nodes {
        if let Some(pid) = n.pid {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            assert!(
                cmdline.is_empty()
                    || exited(pid)
                    || !String::from_utf8_lossy(&cmdline).contains("pubsub-node"),
                "node {} (pid {pid}) outlived the run",
                n.index
            );
        }
    }
}

pub fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}
