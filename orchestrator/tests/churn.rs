//! The churn simulator on real node processes: determinism of the event log, no process
//! outliving the run, removed peers really gone, SIGKILLed peers kept as removed (not
//! failed) with their last snapshot, and a receiver that leaves mid-window not counted as a
//! miss. No assertion depends on how fast anything is.

mod support;

use orchestrator::churn::schedule::Event;
use orchestrator::record::churn_log::{EventRecord, Outcome, read_jsonl};
use orchestrator::record::sections::ChurnSection;
use orchestrator::record::{NodeStatus, RunRecord, Status};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Six peers and every event kind often, for a few seconds.
fn plan(name: &str, remove_mode: &str) -> String {
    format!(
        "\
version: 1
name: {name}
seed: 42
timeout: 2m
groups:
  - id: peers
    count: 6
topology:
  kind: none
# Snapshots often enough that a peer removed a heartbeat after it joined has reported one
# (the node's default is 2 s).
telemetry:
  snapshot_interval: 200ms
workload:
  - churn:
      duration: 6s
      heartbeat: 500ms
      frequencies:
        add_peer: 2
        remove_peer: 3
        add_topic: 2
        remove_topic: 6
        join_random_topic: 1
        join_friends_topic: 2
        leave_random_topic: 4
        add_friend: 1
        message_random_topic: 1
        peak_random_topic: 4
        forget_friends: 5
      limits:
        max_peers: 9
        min_peers: 3
        max_topics: 5
      initial_topics: 3
      initial_peers_per_topic: 3
      peak:
        peers: 2
        duration: 2s
      delivery_window: 1s
      remove_mode: {remove_mode}
      live_every: 1s
"
    )
}

/// The events without anything that depends on timing or on how the processes did.
fn args_of(events: &[EventRecord]) -> Vec<(u64, u32, Event)> {
    events
        .iter()
        .map(|e| (e.seq, e.tick, e.event.clone()))
        .collect()
}

fn churn_of(r: &RunRecord) -> ChurnSection {
    r.sections
        .churn
        .clone()
        .expect("run.json has a churn section")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_event_log_and_no_process_outlives_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let text = plan("churn-det", "graceful");
    let a = run_text(&text, &[], &tmp.path().join("a")).await;
    let b = run_text(&text, &[], &tmp.path().join("b")).await;
    for out in [&a, &b] {
        assert_eq!(
            out.record.outcome.status,
            Status::Passed,
            "{:?}",
            out.record.outcome.reasons
        );
        // `run_text` checked every pid in run.json against /proc; the added peers are there.
        let c = churn_of(&out.record);
        assert!(c.peers_added > 0 && c.peers_removed > 0, "{c:?}");
        assert_eq!(out.record.nodes.len() as u32, 6 + c.peers_added);
        assert!(out.record.nodes.iter().all(|n| n.pid.is_some()));
    }
    let ea = read_jsonl(&a.dir.join("events.jsonl")).unwrap();
    let eb = read_jsonl(&b.dir.join("events.jsonl")).unwrap();
    assert!(ea.len() > 20, "{} events", ea.len());
    assert_eq!(args_of(&ea), args_of(&eb));
    for e in &ea {
        assert!(e.at_ms.is_some() && e.outcome != Outcome::NotRun, "{e:?}");
    }
    // The schedule is a function of the plan: computing it again gives the log's events.
    let loaded =
        orchestrator::plan::load_text(Path::new("x.yaml"), &text, &BTreeMap::new()).unwrap();
    let prepared = orchestrator::churn::prepare(&loaded.plan).unwrap();
    let scheduled: Vec<_> = prepared
        .schedule
        .events
        .iter()
        .map(|s| (s.seq, s.tick, s.event.clone()))
        .collect();
    assert_eq!(args_of(&ea), scheduled);
    // A different seed, another sequence.
    let other = orchestrator::plan::load_text(
        Path::new("x.yaml"),
        &text.replace("seed: 42", "seed: 43"),
        &BTreeMap::new(),
    )
    .unwrap();
    let other = orchestrator::churn::prepare(&other.plan).unwrap();
    assert_ne!(other.schedule.events, prepared.schedule.events);
    let md = read(a.dir.join("report.md"));
    assert!(
        md.contains("## Churn") && md.contains("### Per topic") && md.contains("events.jsonl"),
        "{md}"
    );
    assert!(read(a.dir.join("report.html")).contains("Peers and topics over time"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_peer_keeps_its_last_snapshot_and_is_removed_not_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(&plan("churn-kill", "kill"), &[], tmp.path()).await;
    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    let c = churn_of(r);
    assert!(!c.removed.is_empty());
    assert_eq!(r.summary.nodes_failed, 0);
    for removed in &c.removed {
        let n = &r.nodes[removed.index as usize];
        assert_eq!(n.status, NodeStatus::Removed, "node {}", n.index);
        assert_eq!(n.failure, None);
        assert_eq!(n.exit_signal, Some(libc::SIGKILL), "node {}", n.index);
        assert!(n.result.is_none(), "a SIGKILLed node sends nothing");
        assert!(!removed.has_result);
        // Removals fall on heartbeats after the first second, when every node has reported.
        assert!(
            n.last_snapshot.is_some(),
            "node {} kept its last snapshot",
            n.index
        );
        assert!(removed.has_snapshot);
    }
    let md = read(out.dir.join("report.md"));
    assert!(md.contains("SIGKILL"), "{md}");
    assert!(!md.contains("Why it did not pass"), "{md}");
}

/// Node processes of a run, by index.
fn nodes_by_index(run_id: &str) -> BTreeMap<u32, u32> {
    run_processes(run_id)
        .into_iter()
        .filter_map(|(pid, index)| Some((index?, pid)))
        .collect()
}

/// While the run goes on, the first removed peer's process disappears.
#[test]
fn removed_peer_process_is_really_gone() {
    let tmp = tempfile::tempdir().unwrap();
    // Longer, so the rest of the fleet is still running when the removal is checked.
    let text = plan("churn-gone", "graceful").replace("duration: 6s", "duration: 20s");
    let loaded =
        orchestrator::plan::load_text(Path::new("x.yaml"), &text, &BTreeMap::new()).unwrap();
    let prepared = orchestrator::churn::prepare(&loaded.plan).unwrap();
    let victim = prepared
        .schedule
        .events
        .iter()
        .find_map(|s| match s.event {
            Event::RemovePeer { peer, .. } => Some(peer),
            _ => None,
        })
        .expect("the schedule removes a peer");
    let plan_path = tmp.path().join("gone.yaml");
    std::fs::write(&plan_path, &text).unwrap();
    let run_id = format!("gone-{}", std::process::id());
    let mut child = Command::new(orchestrator_bin())
        .args([
            "run",
            plan_path.to_str().unwrap(),
            "--run-id",
            &run_id,
            "--results",
        ])
        .arg(tmp.path().join("results"))
        .arg("--node-bin")
        .arg(node_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The victim runs (it may be removed within a second of the phase's start) …
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_victim = false;
    while !saw_victim && Instant::now() < deadline {
        saw_victim = nodes_by_index(&run_id).contains_key(&victim);
        std::thread::sleep(Duration::from_millis(10));
    }
    // … until the live line counts a removal: `peers N (+added -removed)`.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = stdout.lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let removed = line
            .split_once(" -")
            .and_then(|(_, rest)| rest.split(')').next()?.parse::<u32>().ok())
            .unwrap_or(0);
        if removed >= 1 {
            break;
        }
    }
    assert!(saw_victim, "node {victim} was running before its removal");
    // Its process goes away (SIGTERM, result, exit, reaped) while the others run on.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (gone, others) = loop {
        let procs = nodes_by_index(&run_id);
        if !procs.contains_key(&victim) || Instant::now() > deadline {
            break (!procs.contains_key(&victim), procs.len());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        gone,
        "node {victim}'s process is still there after its removal"
    );
    assert!(others > 0, "the rest of the fleet still runs");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    let dir = tmp.path().join("results/churn-gone").join(&run_id);
    let record: RunRecord = serde_json::from_str(&read(dir.join("run.json"))).unwrap();
    let n = &record.nodes[victim as usize];
    assert_eq!(n.status, NodeStatus::Removed);
    assert_eq!(n.exit_code, Some(143), "stopped by SIGTERM");
    assert!(
        n.result.is_some(),
        "a gracefully removed node sends its result"
    );
    assert!(
        nodes_by_index(&run_id).is_empty(),
        "no process outlives the run"
    );
}

/// Hand-built: node 0 publishes once on `t`; node 2 leaves `t` right after, in the middle of
/// the message's 3 s window; node 1 stays. Only node 1 is expected to receive it, so node 2
/// is not a miss whatever it got (a churn phase with no events turns the window rule on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_leaves_mid_window_is_not_a_miss() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "\
version: 1
name: churn-window
timeout: 2m
groups:
  - id: peers
    count: 3
topology:
  kind: full
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      nodes: 0
      count: 1
  - unsubscribe:
      topics: [t]
      nodes: 2
  - churn:
      duration: 1s
      heartbeat: 500ms
      initial_topics: 0
      delivery_window: 3s
      live_every: 0s
      frequencies:
        add_peer: 0
        remove_peer: 0
        add_topic: 0
        remove_topic: 0
        join_random_topic: 0
        join_friends_topic: 0
        add_friend: 0
        message_random_topic: 0
        peak_random_topic: 0
        forget_friends: 0
";
    let out = run_text(text, &[], tmp.path()).await;
    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    let c = churn_of(r);
    assert_eq!(c.events_total, 0);
    assert_eq!(c.total.messages, 1);
    assert_eq!(
        (c.total.expected, c.total.received, c.total.missed),
        (1, 1, 0),
        "{:?}",
        c.total
    );
    assert_eq!(r.summary.expected_deliveries, 1);
    assert_eq!(r.summary.delivery_ratio, Some(1.0));
    // Node 2 left after the publish: whatever it got was outside a full window.
    let left = r.nodes[2].result.as_ref().unwrap();
    let got_it = left.seen.iter().any(|s| s.origin == 0);
    assert_eq!(c.total.outside_window, u64::from(got_it));
}
