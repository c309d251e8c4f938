//! The run knows when the host, not the protocol, set the numbers: a real small fleet with
//! busy-loop processes competing for every core is flagged as host-saturated (in run.json,
//! by the `host_saturated` assertion and in report.md); the same fleet on a quiet machine is
//! not. Nothing here is mocked: the figures are the host's own `/proc/stat`.

mod support;

use orchestrator::figures::host_load::BUSY_THRESHOLD;
use orchestrator::host_load::read_cpu_times;
use orchestrator::record::Status;
use serde_json::json;
use std::process::{Child, Command};
use std::time::Duration;
use support::*;

/// Five hosts, ten messages each, asserting the host stayed unsaturated.
fn plan() -> String {
    read(workspace().join("testplans/simple-discovery.yaml")).replace(
        "  - failed_nodes == 0",
        "  - failed_nodes == 0\n  - host_saturated == false",
    )
}

/// Busy-loop processes, killed when dropped; each also ends by itself after two minutes,
/// so none outlives a test that was killed.
struct Hogs(Vec<Child>);

impl Hogs {
    fn start(n: usize) -> Hogs {
        Hogs(
            (0..n)
                .map(|_| {
                    Command::new("timeout")
                        .args(["120", "sh", "-c", "while :; do :; done"])
                        .spawn()
                        .expect("start a busy loop")
                })
                .collect(),
        )
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // `timeout` passes the TERM on to its busy loop.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

/// The host's busy share over one second, before the run.
fn busy_share_now() -> f64 {
    let a = read_cpu_times().expect("/proc/stat");
    std::thread::sleep(Duration::from_secs(1));
    let b = read_cpu_times().expect("/proc/stat");
    (b.busy - a.busy) as f64 / (b.total - a.total).max(1) as f64
}

async fn run(results: &std::path::Path) -> orchestrator::run::RunOutput {
    run_text(
        &plan(),
        &[("hosts", json!(5)), ("messages", json!(10))],
        results,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hogged_host_is_flagged_and_a_quiet_one_is_not() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hogs = 2 * cpus;

    let tmp = tempfile::tempdir().unwrap();
    let hogged = {
        let _hogs = Hogs::start(hogs);
        run(tmp.path()).await
    };
    let r = &hogged.record;
    let h = r.sections.host_load.as_ref().expect("host_load section");
    assert_eq!(h.window, "publish_to_settle");
    assert!(h.window_samples >= 1, "{h:?}");
    assert!(h.saturated_share >= 0.5, "{h:?}");
    assert!(h.busy_share_mean >= BUSY_THRESHOLD, "{h:?}");
    assert!(
        h.run_queue_max as usize >= hogs,
        "every busy loop is runnable: {h:?}"
    );
    assert!(h.host_saturated);
    assert_eq!(r.summary.host_saturated, Some(true));
    // Delivery itself is fine: the verdict is about the latencies' meaning.
    assert_eq!(r.summary.delivery_ratio, Some(1.0));
    assert_eq!(r.outcome.status, Status::AssertionFailed);
    let a = r
        .assertions
        .iter()
        .find(|a| a.assertion == "host_saturated == false")
        .expect("assertion recorded");
    assert_eq!((a.actual, a.passed), (Some(1.0), false));
    let md = read(hogged.dir.join("report.md"));
    assert!(md.contains("The host was saturated"), "{md}");
    assert!(md.contains("bounded by this machine, not by the protocol"));

    // The quiet half needs a quiet machine: on one other work already saturates, the verdict
    // is rightly "saturated", and there is nothing to compare.
    let before = busy_share_now();
    if before >= 0.5 {
        eprintln!(
            "host {:.0} % busy before the quiet run (other work on this machine): \
             its half of the test is skipped",
            before * 100.0
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let quiet = run(tmp.path()).await;
    let r = &quiet.record;
    let q = r.sections.host_load.as_ref().expect("host_load section");
    assert!(!q.host_saturated, "{q:?}");
    assert!(q.saturated_share < h.saturated_share, "{q:?} vs {h:?}");
    assert_eq!(r.summary.host_saturated, Some(false));
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    assert!(!read(quiet.dir.join("report.md")).contains("The host was saturated"));
}
