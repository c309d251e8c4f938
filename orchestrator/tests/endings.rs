//! Every ending keeps the results: SIGINT and SIGTERM in each phase (connect, subscribe,
//! publish, settle, churn, and an idle phase after every delivery), and the plan's timeout,
//! end with every node asked for its result, those results kept and counted in run.json, the
//! reports written and the documented exit code — with a real fleet of real nodes. A second
//! signal ends everything at once.
//!
//! Each run is held in the phase under test by the plan itself (a subscriber nobody can
//! reach keeps `settle` waiting; two separate components keep `wait_topic_peers` waiting) or
//! by the Rust node's test aid `TESTBED_FAULT` (a node that never acknowledges its connect,
//! one that ignores `abort`), so the signal lands where it is meant to; the record's reason
//! says where it landed.

mod support;

use orchestrator::record::{NodeStatus, RunRecord, Status};
use std::io::{BufRead, BufReader, Lines};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Ten messages from every node, delivered before `settle` ends; then a long idle phase.
const DELIVERED_THEN_IDLE: &str = "\
version: 1
name: endings
timeout: TIMEOUT
groups:
  - id: peers
    count: 4
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 10
  - settle:
      timeout: 30s
  - wait: 10m
";

/// Publishing takes 60 s nominal: a signal after `subscribe` lands in the publish phase.
const PUBLISHING: &str = "\
version: 1
name: endings
timeout: 5m
groups:
  - id: peers
    count: 4
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 300
      rate: 5
  - settle: {}
";

/// Nodes 0–1 and nodes 2–3 are two components (discovery per topic, no dial plan). Phase 2
/// holds: `wait_topic_peers` waits for subscribers the other component has. Phase 2 of
/// SETTLE_HELD instead subscribes node 2 to `t` alone in its component, so node 0's ten
/// messages reach node 1 only and `settle` waits for node 2's share until its timeout.
const TWO_COMPONENTS: &str = "\
version: 1
name: endings
timeout: 5m
groups:
  - id: peers
    count: 4
topology:
  kind: none
workload:
  - subscribe:
      topics: [a]
      nodes: 0..2
      discover: true
  - subscribe:
      topics: [b]
      nodes: 2..4
      discover: true
";

// No line continuation: it would eat the indentation.
const SUBSCRIBE_HELD: &str = "  - subscribe:
      topics: [t]
      wait_topic_peers: true
      mesh_timeout: 4m
  - publish:
      topic: t
      count: 10
  - settle: {}
";

// No line continuation: it would eat the indentation.
const SETTLE_HELD: &str = "  - subscribe:
      topics: [t]
      nodes: 0..3
      wait_mesh: false
  - publish:
      topic: t
      nodes: 0
      count: 10
  - settle:
      timeout: 4m
";

/// Six peers coming and going for a minute (the churn tests' frequencies).
const CHURN: &str = "\
version: 1
name: endings
seed: 42
timeout: 5m
groups:
  - id: peers
    count: 6
topology:
  kind: none
telemetry:
  snapshot_interval: 200ms
workload:
  - churn:
      duration: 60s
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
      delivery_window: 1s
      live_every: 1s
";

/// A run of the binary under way.
struct Started {
    child: Child,
    stderr: Lines<BufReader<ChildStderr>>,
    /// Kept until the end: the results live in it.
    _tmp: tempfile::TempDir,
    run_id: String,
    /// The run's results folder.
    dir: PathBuf,
}

/// Starts `plan` (named `endings`) with `env` added to the orchestrator's environment, which
/// its nodes inherit.
fn start(plan: &str, tag: &str, env: &[(&str, &str)]) -> Started {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    let run_id = format!("endings-{}-{tag}", std::process::id());
    let mut child = Command::new(orchestrator_bin())
        .args([
            "run",
            path.to_str().unwrap(),
            "--run-id",
            &run_id,
            "--results",
        ])
        .arg(tmp.path().join("results"))
        .arg("--node-bin")
        .arg(node_bin())
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let dir = tmp.path().join("results/endings").join(&run_id);
    Started {
        child,
        stderr,
        _tmp: tmp,
        run_id,
        dir,
    }
}

impl Started {
    /// Reads stderr up to the `nth` (from 1) line of a finished `kind` phase, which must be ok.
    fn after_phase(&mut self, kind: &str, nth: usize) {
        let mut seen = 0;
        for line in self.stderr.by_ref() {
            let line = line.unwrap();
            if line.trim_start().starts_with(kind) {
                assert!(line.contains("ok"), "{kind} failed: {line}");
                seen += 1;
                if seen == nth {
                    return;
                }
            }
        }
        panic!("the run ended before {kind} #{nth} finished");
    }

    /// Reads stderr up to a line that contains `text`.
    fn stderr_line(&mut self, text: &str) {
        for line in self.stderr.by_ref() {
            if line.unwrap().contains(text) {
                return;
            }
        }
        panic!("the run ended without saying {text:?}");
    }

    /// Waits until node `index`'s log holds `text`.
    fn node_log(&mut self, index: u32, text: &str) {
        let log = self.dir.join(format!("logs/node-{index:04}.log"));
        let until = Instant::now() + Duration::from_secs(120);
        while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains(text)) {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the run ended before node {index} logged {text:?}"
            );
            assert!(Instant::now() < until, "node {index} never logged {text:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reads stdout up to its first line (the churn phase's live view), then drains it.
    fn first_stdout_line(&mut self) {
        let mut lines = BufReader::new(self.child.stdout.take().unwrap()).lines();
        assert!(
            lines.next().is_some_and(|l| l.is_ok()),
            "the run ended before its first live line"
        );
        std::thread::spawn(move || lines.for_each(drop));
    }

    fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) of the child this test started.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the end; returns the exit code and the record, having checked that the
    /// reports were written and no process of the run is left.
    fn finish(mut self) -> (Option<i32>, RunRecord) {
        if let Some(out) = self.child.stdout.take() {
            std::thread::spawn(move || std::io::copy(&mut { out }, &mut std::io::sink()));
        }
        let rest: Vec<String> = self.stderr.map_while(Result::ok).collect();
        let status = self.child.wait().unwrap();
        let record: RunRecord = serde_json::from_str(&read(self.dir.join("run.json")))
            .unwrap_or_else(|e| panic!("run.json: {e}; stderr: {rest:?}"));
        assert!(
            read(self.dir.join("report.md")).contains("endings"),
            "the report is written"
        );
        assert!(
            self.dir.join("metrics.prom").exists(),
            "metrics.prom is written"
        );
        assert_run_gone(&self.run_id);
        (status.code(), record)
    }
}

/// Runs `plan`; `delay_ms` after the `nth` finished `kind` phase, sends `signal` (if any).
fn run_after(
    plan: &str,
    tag: &str,
    (kind, nth): (&str, usize),
    delay_ms: u64,
    signal: Option<i32>,
) -> (Option<i32>, RunRecord) {
    let mut s = start(plan, tag, &[]);
    s.after_phase(kind, nth);
    if let Some(sig) = signal {
        std::thread::sleep(Duration::from_millis(delay_ms));
        s.signal(sig);
    }
    s.finish()
}

/// Interrupted (exit 130) during `phase` (as the record's reason words it).
fn assert_interrupted_during(code: Option<i32>, record: &RunRecord, phase: &str) {
    assert_eq!(code, Some(130), "{:?}", record.outcome.reasons);
    assert_eq!(record.outcome.status, Status::Interrupted);
    assert!(
        record.outcome.reasons[0].contains(phase),
        "meant to land during {phase}: {:?}",
        record.outcome.reasons
    );
}

/// Every node kept its result, none is blamed, and the summary counts them all.
fn assert_every_result_kept(record: &RunRecord) {
    for n in &record.nodes {
        assert_eq!(
            n.status,
            NodeStatus::Aborted,
            "node {}: {:?}",
            n.index,
            n.failure
        );
        assert!(n.result.is_some(), "node {} kept its result", n.index);
    }
    let s = &record.summary;
    assert_eq!(s.nodes_without_result, 0);
    assert_eq!(s.nodes_failed, 0, "{:?}", record.outcome.reasons);
}

/// Messages the nodes' results say they received from other nodes: what had been delivered
/// when they were stopped.
fn seen_in_results(record: &RunRecord) -> u64 {
    record
        .nodes
        .iter()
        .filter_map(|n| Some((n.index, n.result.as_ref()?)))
        .flat_map(|(i, r)| r.seen.iter().filter(move |s| s.origin != i))
        .flat_map(|s| s.ranges.iter().map(|[lo, hi]| hi - lo + 1))
        .sum()
}

/// The record counts exactly what the nodes had received when the signal stopped them.
fn assert_delivered_as_received(record: &RunRecord) {
    let s = &record.summary;
    assert_eq!(s.delivered, seen_in_results(record), "{s:?}");
    assert_eq!(s.unexpected_deliveries, 0, "{s:?}");
}

/// After `settle` every message had been delivered: the interrupted run says so.
fn assert_all_delivered(record: &RunRecord) {
    let s = &record.summary;
    assert_eq!(s.messages_published, 40);
    assert_eq!(s.expected_deliveries, 40 * 3);
    assert_eq!(s.delivered, 40 * 3, "what was delivered before the ending");
    assert_eq!(s.delivery_ratio, Some(1.0));
    assert_delivered_as_received(record);
}

/// Nothing was published before the signal: every result is there, and empty of messages.
fn assert_nothing_published(record: &RunRecord) {
    let s = &record.summary;
    assert_eq!((s.messages_published, s.delivered), (0, 0), "{s:?}");
}

const SIGNALS: [(i32, &str); 2] = [(libc::SIGINT, "int"), (libc::SIGTERM, "term")];

#[test]
fn a_signal_after_delivery_keeps_every_result() {
    let plan = DELIVERED_THEN_IDLE.replace("TIMEOUT", "5m");
    for (sig, name) in SIGNALS {
        let (code, record) = run_after(&plan, name, ("settle", 1), 300, Some(sig));
        assert_interrupted_during(code, &record, "(wait)");
        assert_every_result_kept(&record);
        assert_all_delivered(&record);
    }
}

#[test]
fn the_plans_timeout_keeps_every_result_and_blames_no_node() {
    // The idle phase outlasts the timeout: the run times out with everything delivered.
    let plan = DELIVERED_THEN_IDLE.replace("TIMEOUT", "15s");
    let (code, record) = run_after(&plan, "timeout", ("settle", 1), 0, None);
    assert_eq!(code, Some(3));
    assert_eq!(record.outcome.status, Status::Timeout);
    assert!(
        record.outcome.reasons[0].contains("during workload phase 3 (wait)"),
        "{:?}",
        record.outcome.reasons
    );
    assert_every_result_kept(&record);
    assert_all_delivered(&record);
}

#[test]
fn a_signal_while_connecting_keeps_every_result() {
    // Node 0 never acknowledges its connect: the run stays in the connect phase.
    let env = [("TESTBED_FAULT", "0:stall_connect")];
    for (sig, name) in SIGNALS {
        let mut s = start(PUBLISHING, &format!("connect-{name}"), &env);
        s.node_log(0, "connect is never acknowledged");
        s.signal(sig);
        let (code, record) = s.finish();
        assert_interrupted_during(code, &record, "during connect");
        assert_every_result_kept(&record);
        assert_nothing_published(&record);
    }
}

#[test]
fn a_signal_while_subscribing_keeps_every_result() {
    let plan = format!("{TWO_COMPONENTS}{SUBSCRIBE_HELD}");
    for (sig, name) in SIGNALS {
        let tag = format!("subscribe-{name}");
        let (code, record) = run_after(&plan, &tag, ("subscribe", 2), 500, Some(sig));
        assert_interrupted_during(code, &record, "phase 2 (subscribe)");
        assert_every_result_kept(&record);
        assert_nothing_published(&record);
    }
}

#[test]
fn a_signal_while_publishing_keeps_every_partial_result() {
    for (sig, name) in SIGNALS {
        let tag = format!("publish-{name}");
        let (code, record) = run_after(PUBLISHING, &tag, ("subscribe", 1), 1500, Some(sig));
        assert_interrupted_during(code, &record, "phase 1 (publish)");
        assert_every_result_kept(&record);
        let s = &record.summary;
        assert!(
            s.messages_published > 0 && s.messages_published < 4 * 300,
            "{s:?}"
        );
        assert!(s.delivered > 0);
        assert_delivered_as_received(&record);
        for n in &record.nodes {
            let r = n.result.as_ref().unwrap();
            assert!(!r.published.is_empty(), "node {} had published", n.index);
        }
    }
}

#[test]
fn a_signal_while_settling_keeps_every_result() {
    let plan = format!("{TWO_COMPONENTS}{SETTLE_HELD}");
    for (sig, name) in SIGNALS {
        let tag = format!("settle-{name}");
        let (code, record) = run_after(&plan, &tag, ("publish", 1), 1500, Some(sig));
        assert_interrupted_during(code, &record, "phase 4 (settle)");
        assert_every_result_kept(&record);
        // Node 0's ten messages reached node 1, and could never reach node 2.
        let s = &record.summary;
        assert_eq!(s.messages_published, 10);
        assert_eq!(s.expected_deliveries, 20);
        assert_eq!(s.delivered, 10, "{s:?}");
        assert_delivered_as_received(&record);
    }
}

#[test]
fn a_signal_during_churn_keeps_every_result() {
    for (sig, name) in SIGNALS {
        let mut s = start(CHURN, &format!("churn-{name}"), &[]);
        s.first_stdout_line();
        s.signal(sig);
        let (code, record) = s.finish();
        assert_interrupted_during(code, &record, "phase 0 (churn)");
        assert_eq!(
            record.summary.nodes_failed, 0,
            "{:?}",
            record.outcome.reasons
        );
        for n in &record.nodes {
            match n.status {
                NodeStatus::Removed => {}
                // A peer churn added that had not reported its address yet was never asked.
                NodeStatus::Aborted if n.peer_id.is_none() => {}
                NodeStatus::Aborted => {
                    assert!(n.result.is_some(), "node {} kept its result", n.index)
                }
                other => panic!("node {}: {other:?} {:?}", n.index, n.failure),
            }
        }
    }
}

#[test]
fn a_second_sigint_ends_everything_at_once() {
    // Node 1 ignores `abort`: after the first signal the orchestrator waits the collection's
    // whole bound (20 s) for its result — unless a second signal ends the wait.
    let mut s = start(PUBLISHING, "twice", &[("TESTBED_FAULT", "1:ignore_abort")]);
    s.after_phase("subscribe", 1);
    s.signal(libc::SIGINT);
    s.stderr_line("interrupted: stopping the fleet");
    s.signal(libc::SIGINT);
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        if asked.elapsed() > Duration::from_secs(15) {
            let _ = s.child.kill();
            panic!("still running 15 s after the second SIGINT: it waited for the results");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    // As docs/reliability.md says: what was written stays, nothing more is written.
    assert!(s.dir.join("plan.yaml").exists());
    assert!(!s.dir.join("run.json").exists());
    // The nodes die with the orchestrator (parent-death signal), node 1 included.
    let until = Instant::now() + Duration::from_secs(10);
    while !run_processes(&s.run_id).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_run_gone(&s.run_id);
}
