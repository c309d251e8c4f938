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
    // Note each node's namespace while the fleet runs, to check afterwards that none is left.
    let run_id = format!("shaped-{}", std::process::id());
    let seen = NamespaceWatch::start(&run_id);
    let loaded = orchestrator::plan::load_text(
        std::path::Path::new("shaped.yaml"),
        SHAPED,
        &Default::default(),
    )
    .unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let out = orchestrator::run::run_plan(
        &loaded,
        &orchestrator::run::RunOptions {
            run_id: Some(run_id.clone()),
            ..options(tmp.path())
        },
        stop_rx,
    )
    .await
    .expect("run completes");
    assert_no_node_left(&out);
    let namespaces = seen.stop();
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
        r.sections.shaper.is_some(),
        "the shaper's counters are recorded"
    );
    // Every node's namespace died with its process: each one seen while the fleet ran is
    // held by no process now.
    assert_eq!(
        namespaces.len(),
        6,
        "every node's namespace was seen while the fleet ran: {namespaces:?}"
    );
    let live = netsim::live_netns_inodes();
    let left: Vec<&u64> = namespaces.intersection(&live).collect();
    assert!(
        left.is_empty(),
        "node namespaces outlived the run: {left:?}"
    );
}

/// Polls the node processes of one run (every 20 ms, on its own thread) and collects their
/// network namespace inodes, skipping the host's own.
struct NamespaceWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<BTreeSet<u64>>,
}

impl NamespaceWatch {
    fn start(run_id: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, run_id) = (stop.clone(), run_id.to_string());
        let host = netns_inode(std::process::id());
        let thread = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for (pid, index) in run_processes(&run_id) {
                    if let (Some(_), Some(ns)) = (index, netns_inode(pid))
                        && Some(ns) != host
                    {
                        seen.insert(ns);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            seen
        });
        Self { stop, thread }
    }

    fn stop(self) -> BTreeSet<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Two groups publishing once a second, cut apart from 8 s to 14 s after the fleet was
/// launched (the events' clock, which the receive-time view shares).
const PARTITION: &str = "\
version: 1
name: partition
runner: netns
timeout: 3m
groups:
  - id: a
    count: 3
  - id: b
    count: 3
network:
  default: { latency: 5ms }
  events:
    - { at: 8s, partition: { name: cut, groups: [[a], [b]] } }
    - { at: 14s, heal: all }
topology: { kind: full }
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 24
      rate: 1
  - settle: { timeout: 60s }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_stops_cross_group_deliveries_until_the_heal() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(PARTITION, &[], tmp.path()).await;
    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    // TCP carries what the cut held back once it heals: in the end everything arrives.
    assert_eq!(r.summary.delivery_ratio, Some(1.0));
    let v = r
        .summary
        .received_over_time
        .as_ref()
        .expect("two groups: the receive-time view is recorded");
    assert_eq!(v.zero, "fleet_launched");
    assert_eq!(v.bucket_s, 1);
    assert_eq!(v.cuts.len(), 1, "{:?}", v.cuts);
    let cut = &v.cuts[0];
    assert_eq!((cut.from_s, cut.to_s), (8.0, Some(14.0)));

    // One bucket of slack at each edge: a node counts whole wall-clock seconds and the view
    // places each second by its middle, so a delivery may sit up to half a second from its
    // true time; and a message that crossed just before the cut is relayed inside the far
    // side a moment later (still a cross-group delivery). Bucket j holds deliveries from
    // about j − 0.5 to j + 1.5 s, so only buckets with [j − 1, j + 2] inside the cut must be
    // empty across it: here 9 to 12.
    let clean = (cut.from_s as usize + 1)..=(cut.to_s.unwrap() as usize - 2);
    let in_window = |cross: bool| -> u64 {
        v.pairs
            .iter()
            .filter(|p| (p.origin_group != p.receiver_group) == cross)
            .flat_map(|p| p.counts.get(clean.clone()).unwrap_or_default())
            .sum()
    };
    let zero = v.zero_unix_ns;
    let published_in_window = r
        .nodes
        .iter()
        .flat_map(|n| n.result.iter().flat_map(|x| &x.published))
        .filter(|p| clean.contains(&((p.at_ns.saturating_sub(zero) / 1_000_000_000) as usize)))
        .count();
    assert!(
        published_in_window > 0,
        "the fleet was still setting up during the cut; nothing to check: {:?}",
        r.phases
    );
    assert_eq!(
        in_window(true),
        0,
        "no message crossed the cut in seconds {clean:?}: {:?}",
        v.pairs
    );
    assert!(
        in_window(false) > 0,
        "messages inside each side kept arriving during the cut: {:?}",
        v.pairs
    );
    let cross_after: u64 = v
        .pairs
        .iter()
        .filter(|p| p.origin_group != p.receiver_group)
        .flat_map(|p| p.counts.iter().skip(14))
        .sum();
    assert!(cross_after > 0, "after the heal messages crossed again");

    let md = std::fs::read_to_string(out.dir.join("report.md")).unwrap();
    assert!(md.contains("## Deliveries by receive time"), "{md}");
    assert!(md.contains("partitioned: cut"), "{md}");
    let html = std::fs::read_to_string(out.dir.join("report.html")).unwrap();
    assert!(html.contains("Deliveries by receive time"));
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
    let nodes: Vec<(u32, u64)> = run_processes(&run_id)
        .into_iter()
        .filter_map(|(pid, _)| Some((pid, netns_inode(pid)?)))
        .collect();
    assert_eq!(nodes.len(), 6, "all six nodes run in namespaces");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Wait (bounded) for the kernel to deliver the parent-death signals and reap.
    for _ in 0..100 {
        if nodes.iter().all(|(pid, _)| exited(*pid)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for (pid, _) in &nodes {
        assert!(exited(*pid), "node pid {pid} outlived the orchestrator");
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
    // The unprivileged user may not reach the build's own folder (a checkout under a 0700
    // `mktemp -d`): it runs copies from the open temporary folder.
    let orchestrator = tmp.path().join("orchestrator");
    let node = tmp.path().join("pubsub-node");
    std::fs::copy(orchestrator_bin(), &orchestrator).unwrap();
    std::fs::copy(node_bin(), &node).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&orchestrator)
        .args([
            "run",
            plan.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--node-bin",
        ])
        .arg(&node)
        .output()
        .expect("setpriv (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("netns runner cannot run here"), "{stderr}");
    assert!(!results.exists(), "nothing is written");
}

/// Nodes in namespaces cannot reach the orchestrator's loopback: they export traces through
/// the embedded collector's Unix socket, and every delivery has its span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shaped_fleet_exports_traces_through_the_unix_socket() {
    let plan = "\
version: 1
name: shaped-traces
runner: netns
timeout: 2m
groups:
  - id: a
    count: 3
network:
  default: { latency: 3ms }
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 2
      rate: 10
  - settle: { timeout: 20s }
telemetry:
  traces: true
  sample_ratio: 1.0
  metrics_listen: \"off\"
";
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(plan, &[], tmp.path()).await;
    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    assert_eq!(r.summary.delivered, 3 * 2 * 2);
    let traces = &serde_json::to_value(&r.sections.traces).unwrap();
    assert_eq!(traces["collector"], "embedded");
    let endpoint = traces["endpoint"].as_str().unwrap();
    let socket = endpoint
        .strip_prefix("unix:")
        .unwrap_or_else(|| panic!("a unix endpoint, not {endpoint}"));
    assert!(
        !std::path::Path::new(socket).exists(),
        "the socket file goes with the run"
    );

    let file: serde_json::Value = serde_json::from_str(&read(out.dir.join("traces.json"))).unwrap();
    let spans: Vec<&serde_json::Value> = file["data"]
        .as_array()
        .expect("data: [traces]")
        .iter()
        .flat_map(|t| t["spans"].as_array().unwrap())
        .collect();
    let count = |op: &str| spans.iter().filter(|s| s["operationName"] == op).count() as u64;
    assert_eq!(
        count("deliver"),
        r.summary.delivered,
        "one span per delivery"
    );
    assert_eq!(count("publish"), r.summary.messages_published);
    assert_eq!(count("lifecycle"), 3, "every node's lifecycle");
}
