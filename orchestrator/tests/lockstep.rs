//! Lock-step publishing on the reference workload (floodsub, plaintext, discovery): each
//! message reaches every subscriber before the next is sent, checked from what the nodes
//! themselves recorded — the publishers' send times (their results) against the receivers'
//! receive times (their `delivered` events) and their seen-sets.

mod support;

use orchestrator::record::{NodeRecord, Status};
use serde_json::json;
use std::collections::BTreeSet;
use support::*;

fn sent_ns(nodes: &[NodeRecord], origin: u32, seq: u64) -> u64 {
    let r = nodes[origin as usize]
        .result
        .as_ref()
        .expect("publisher's result");
    r.published
        .iter()
        .find(|p| p.seq == seq)
        .unwrap_or_else(|| panic!("node {origin} did not record publishing message {seq}"))
        .at_ns
}

fn seen(n: &NodeRecord, origin: u32, seq: u64) -> bool {
    n.result.as_ref().is_some_and(|r| {
        r.seen
            .iter()
            .filter(|s| s.origin == origin)
            .any(|s| s.ranges.iter().any(|[a, b]| *a <= seq && seq <= *b))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn each_message_reaches_every_subscriber_before_the_next_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let text = read(workspace().join("testplans/reference-simple-discovery.yaml"));
    let (hosts, messages) = (6u32, 15u32);
    let out = run_text(
        &text,
        &[("hosts", json!(hosts)), ("messages", json!(messages))],
        tmp.path(),
    )
    .await;
    let r = &out.record;
    assert_eq!(r.outcome.status, Status::Passed, "{:?}", r.outcome.reasons);
    let l = r.sections.lockstep.as_ref().expect("a lockstep section");
    assert_eq!(l.phases.len(), 2);
    assert_eq!(l.phases[0].planned, 1);
    assert_eq!(l.phases[1].planned, messages);
    // The first message comes from host 0; the rest from publishers drawn from the seed.
    assert_eq!(l.phases[0].messages[0].origin, 0);
    let origins: BTreeSet<u32> = l.phases[1].messages.iter().map(|m| m.origin).collect();
    assert!(origins.len() > 1, "one publisher only: {origins:?}");
    let all: Vec<_> = l.phases.iter().flat_map(|p| &p.messages).collect();
    assert_eq!(all.len() as u32, 1 + messages);
    for (k, m) in all.iter().enumerate() {
        // Every other host recorded the message in its own seen-set, and reported it.
        for n in r.nodes.iter().filter(|n| n.index != m.origin) {
            assert!(
                seen(n, m.origin, m.seq),
                "node {} lacks message {k}",
                n.index
            );
            assert!(
                m.delivered.iter().any(|[d, _]| *d == u64::from(n.index)),
                "no delivered event of node {} for message {k}",
                n.index
            );
        }
        assert_eq!(m.receivers, hosts - 1);
        let sent = sent_ns(&r.nodes, m.origin, m.seq);
        let last = m.delivered.iter().map(|[_, at]| *at).max().unwrap();
        assert!(last >= sent, "message {k} received before it was sent");
        let t = m.full_delivery_ms.expect("a time to full delivery");
        assert!((t - (last - sent) as f64 / 1e6).abs() < 1e-6);
        // Lock-step: the next message was sent, by its publisher's own clock, only after
        // the last receiver had this one, by the receiver's clock (one host, one clock).
        if let Some(next) = all.get(k + 1) {
            let next_sent = sent_ns(&r.nodes, next.origin, next.seq);
            assert!(
                next_sent > last,
                "message {} was sent {} ns before message {k} reached its last subscriber",
                k + 1,
                last - next_sent
            );
        }
    }
    // The workload span holds every message's time to full delivery, one after the other.
    let span = l.workload_span_ms.expect("a workload span");
    let sum: f64 = all.iter().filter_map(|m| m.full_delivery_ms).sum();
    assert!(span >= sum, "span {span} ms < the messages' {sum} ms");
    let d = l.phases[1].full_delivery.expect("percentiles");
    assert_eq!(d.count, u64::from(messages));
    assert!(d.p50_ms <= d.p99_ms && d.p99_ms <= d.max_ms);
    let slowest = l.phases[1].slowest.as_ref().expect("the slowest message");
    assert_eq!(slowest.full_delivery_ms, Some(d.max_ms));
    let report = read(out.dir.join("report.md"));
    assert!(report.contains("## Lock-step publishing"), "{report}");
    assert!(report.contains(&format!(
        "slowest: message {} of node {}",
        slowest.seq, slowest.origin
    )));
}
