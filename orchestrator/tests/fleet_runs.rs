//! Real fleets of `pubsub-node` processes over real TCP: delivery, exact accounting, and
//! that every process is reaped.

mod support;

use orchestrator::record::{NodeStatus, Status};
use serde_json::json;
use support::*;
use testbed_contract::histogram;

fn simple_discovery() -> String {
    read(workspace().join("testplans/simple-discovery.yaml"))
}

async fn check_full_delivery(hosts: u32, variant: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(
        &simple_discovery(),
        &[
            ("hosts", json!(hosts)),
            ("messages", json!(5)),
            ("variant", json!(variant)),
        ],
        tmp.path(),
    )
    .await;
    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    let s = &r.summary;
    // Host 0 publishes 1 + 5 messages to hosts-1 subscribers; every other host publishes 5 to
    // hosts-2 other subscribers.
    let h = hosts as u64;
    let expected = 6 * (h - 1) + (h - 1) * 5 * (h - 2);
    assert_eq!(s.expected_deliveries, expected);
    assert_eq!(s.delivered, expected);
    assert_eq!(s.delivery_ratio, Some(1.0));
    // One latency sample per delivery: the merged histogram agrees with the seen-sets.
    assert_eq!(s.latency.unwrap().count, expected);
    let from_nodes: u64 = r
        .nodes
        .iter()
        .flat_map(|n| &n.result.as_ref().unwrap().latency)
        .map(|l| histogram::decode(&l.hdr).unwrap().len())
        .sum();
    assert_eq!(from_nodes, expected);
    assert_eq!(s.duplicates, 0);
    assert!(r.nodes.iter().all(|n| n.status == NodeStatus::Ok));
    // The finish acks' counters are kept per node; nothing was malformed or clamped.
    for n in &r.nodes {
        let info = n.finish_info.as_ref().expect("finish ack info recorded");
        assert_eq!(
            info.malformed_payloads,
            Some(0),
            "node {}: {info:?}",
            n.index
        );
        assert_eq!(
            info.clamped_latencies,
            Some(0),
            "node {}: {info:?}",
            n.index
        );
    }
    assert!(out.dir.join("report.md").exists() && out.dir.join("run.json").exists());
    assert!(out.dir.join("logs/node-0000.log").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_gossipsub_nodes_deliver_everything() {
    check_full_delivery(5, "gossipsub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_gossipsub_nodes_deliver_everything() {
    check_full_delivery(20, "gossipsub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_floodsub_nodes_deliver_everything() {
    check_full_delivery(5, "floodsub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_rerenders_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(
        &simple_discovery(),
        &[("hosts", json!(3)), ("messages", json!(2))],
        tmp.path(),
    )
    .await;
    let before = read(out.dir.join("report.md"));
    std::fs::remove_file(out.dir.join("report.md")).unwrap();
    let status = std::process::Command::new(orchestrator_bin())
        .arg("report")
        .arg(&out.dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(read(out.dir.join("report.md")), before);
}
