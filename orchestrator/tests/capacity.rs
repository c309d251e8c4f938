//! `orchestrator capacity` at tiny scale, through the binary: every probe is a real run kept
//! in the results folder, `capacity.json` records them, and the answer agrees with the
//! probes (the largest ok value below the smallest one that was not). Which sizes are ok
//! depends on the machine and its load; the consistency of the search does not.

mod support;

use std::process::Command;
use support::*;

#[test]
fn capacity_bisects_with_real_runs_and_keeps_every_probe() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(orchestrator_bin())
        .current_dir(workspace())
        .args([
            "capacity",
            "testplans/simple-discovery.yaml",
            "--param",
            "hosts",
        ])
        .args(["--min", "3", "--max", "6", "--resolution", "1"])
        .args(["--set", "messages=3", "--quiet", "--node-bin"])
        .arg(node_bin())
        .arg("--results")
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("capacity: "), "{stdout}");

    let path = stdout.lines().last().unwrap();
    let rec: serde_json::Value = serde_json::from_str(&read(path)).unwrap();
    let dir = std::path::Path::new(path).parent().unwrap();
    let probes = rec["probes"].as_array().unwrap();
    assert!(!probes.is_empty());
    // Each probe printed its line, and its run is kept with the value it ran with.
    for p in probes {
        let v = p["value"].as_u64().unwrap();
        assert!((3..=6).contains(&v), "{p}");
        let run: serde_json::Value =
            serde_json::from_str(&read(dir.join(p["dir"].as_str().unwrap()).join("run.json")))
                .unwrap();
        assert_eq!(run["summary"]["nodes"].as_u64(), Some(v));
        let ok = p["ok"].as_bool().unwrap();
        assert_eq!(
            ok,
            run["summary"]["delivery_ratio"].as_f64() == Some(1.0)
                && run["summary"]["host_saturated"].as_bool() == Some(false),
            "{p}"
        );
        assert!(
            stderr
                .lines()
                .any(|l| l.trim_start().starts_with(&v.to_string()))
        );
    }
    let value = |k: &str| rec[k].as_u64();
    let ok_values = probes
        .iter()
        .filter(|p| p["ok"] == true)
        .map(|p| p["value"].as_u64());
    let over_values = probes
        .iter()
        .filter(|p| p["ok"] == false)
        .map(|p| p["value"].as_u64());
    assert_eq!(value("answer"), ok_values.max().flatten());
    assert_eq!(value("limit"), over_values.min().flatten());
    if let (Some(a), Some(l)) = (value("answer"), value("limit")) {
        assert!(a < l, "{rec}");
        assert!(l - a <= 1, "bisection stopped early: {rec}");
    }
    // No more probes than a bisection of [3, 6] needs.
    assert!(probes.len() <= 4, "{rec}");
}
