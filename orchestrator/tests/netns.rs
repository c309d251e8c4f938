//! The `netns` runner: real namespaces, real TUN devices, the user-space shaper between them.
//! Needs root and /dev/net/tun (CI runs as root).

mod support;

use orchestrator::record::Status;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::*;

/// Two groups, 25 ms one way between everyone: no delivery can be faster than that.
const SHAPED: &str = "\
version: 1
name: shaped
runner: netns
timeout: 2m
groups:
  - id: a
    count: 3
  - id: b
    count: 3
network:
  default: { latency: 25ms }
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 3
      rate: 10
  - settle: { timeout: 20s }
";

fn netns_inode(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    link.to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_latency_shows_in_measured_latency_and_nothing_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(SHAPED, &[], tmp.path()).await;
    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    assert_eq!(r.runner, "netns");
    assert_eq!(r.summary.delivery_ratio, Some(1.0));
    let lat = r.summary.latency.expect("deliveries were measured");
    assert!(
        lat.min_ms >= 25.0,
        "every delivery crossed at least one 25 ms link, min was {} ms",
        lat.min_ms
    );
    // Nodes listened on their namespace addresses, not loopback.
    assert!(
        r.nodes
            .iter()
            .all(|n| n.listen_addrs.iter().any(|a| a.starts_with("/ip4/10.77.")))
    );
    assert!(
        r.extra.contains_key("shaper"),
        "the shaper's counters are recorded"
    );
    // Every node's namespace died with its process.
    let live = netsim::live_netns_inodes();
    let ours: Vec<u32> = r.nodes.iter().filter_map(|n| n.pid).collect();
    for pid in ours {
        assert!(
            netns_inode(pid).is_none(),
            "node pid {pid} is gone with its namespace"
        );
    }
    let _ = live;
}

/// `kill -9` of the orchestrator: the nodes die with it (parent-death signal) and their
/// namespaces and TUN devices with them.
#[test]
fn kill_9_of_the_orchestrator_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("shaped.yaml");
    std::fs::write(
        &plan,
        SHAPED.replace("count: 3\n      rate: 10", "count: 600\n      rate: 10"),
    )
    .unwrap();
    let run_id = format!("k9-{}", std::process::id());
    let mut child = Command::new(orchestrator_bin())
        .args([
            "run",
            plan.to_str().unwrap(),
            "--run-id",
            &run_id,
            "--results",
        ])
        .arg(tmp.path().join("results"))
        .arg("--node-bin")
        .arg(node_bin())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().trim_start().starts_with("subscribe") {
            break;
        }
    }
    // The fleet is publishing: note every node process and namespace of this run.
    let want = format!("TESTBED_RUN_ID={run_id}");
    let nodes: Vec<(u32, u64)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            env.split(|b| *b == 0)
                .any(|v| v == want.as_bytes())
                .then_some(pid)
        })
        .filter_map(|pid| Some((pid, netns_inode(pid)?)))
        .collect();
    assert_eq!(nodes.len(), 6, "all six nodes run in namespaces");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Wait (bounded) for the kernel to deliver the parent-death signals and reap.
    let gone = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    };
    for _ in 0..100 {
        if nodes.iter().all(|(pid, _)| gone(*pid)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for (pid, _) in &nodes {
        assert!(gone(*pid), "node pid {pid} outlived the orchestrator");
    }
    let ours: BTreeSet<u64> = nodes.iter().map(|n| n.1).collect();
    let live = netsim::live_netns_inodes();
    assert!(ours.is_disjoint(&live), "a node namespace outlived the run");
}

/// Without the privileges, a netns plan is refused before anything starts.
#[test]
fn netns_plan_is_refused_without_privileges() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let plan = tmp.path().join("shaped.yaml");
    std::fs::write(&plan, SHAPED).unwrap();
    let results = tmp.path().join("results");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(orchestrator_bin())
        .args([
            "run",
            plan.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--node-bin",
        ])
        .arg(node_bin())
        .output()
        .expect("setpriv (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("netns runner cannot run here"), "{stderr}");
    assert!(!results.exists(), "nothing is written");
}
