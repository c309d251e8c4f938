//! What the node reports: snapshots, and the final result.

use super::Node;
use crate::clock::now_ns;
use crate::control::ControlTx;
use crate::lifecycle::Lifecycle;
use crate::{exit, metrics, proc_stats};
use std::collections::BTreeMap;
use std::time::Duration;
use testbed_contract::plan::Variant;
use testbed_contract::protocol::NodeMsg;
use testbed_contract::results::{ExitReason, NodeResult, NodeState, Snapshot, TopicPeers};

impl Node {
    pub(super) fn snapshot(&self) -> Snapshot {
        let mem = proc_stats::memory();
        let topics: BTreeMap<String, TopicPeers> = self
            .subscriptions
            .iter()
            .filter(|s| s.to_ns.is_none())
            .map(|s| {
                (
                    s.topic.clone(),
                    TopicPeers {
                        mesh: self.net.mesh_peers(&s.topic),
                        subscribed: self.net.subscribed_peers(&s.topic),
                    },
                )
            })
            .collect();
        Snapshot {
            at_ns: now_ns(),
            published: self.log.len(),
            received: self.receiver.received,
            duplicates: self.receiver.duplicates,
            connected_peers: self.net.swarm.connected_peers().count() as u32,
            rss_bytes: mem.rss_bytes,
            cpu_ns: proc_stats::cpu_ns(),
            topics,
        }
    }

    /// Counters the result has no field for (see the contract), sent in the `finish` ack.
    pub(super) fn counters_info(&self) -> serde_json::Value {
        serde_json::json!({
            "malformed_payloads": self.receiver.malformed,
            "clamped_latencies": self.receiver.clamped,
        })
    }

    /// Moves to Done (unless failed), sends the result as the last message, and closes.
    pub(super) async fn finish_with(mut self, exit_reason: ExitReason, error: Option<String>) {
        let last_snapshot = self.snapshot();
        let figures = metrics::read(&self.registry, self.cfg.variant == Variant::Gossipsub);
        let latency = self.receiver.latency().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot encode latency histograms; result has none");
            Vec::new()
        });
        if self.receiver.malformed > 0 || self.receiver.clamped > 0 {
            tracing::warn!(
                malformed = self.receiver.malformed,
                clamped = self.receiver.clamped,
                "some deliveries were malformed or arrived before their publish time"
            );
        }
        self.advance(NodeState::Done, None);
        let mem = proc_stats::memory();
        let result = NodeResult {
            index: self.cfg.index,
            peer_id: self.peer_id.clone(),
            exit: exit_reason,
            error,
            latency,
            published: self.log.to_published(),
            seen: self.receiver.seen(),
            subscriptions: self.subscriptions.clone(),
            received: self.receiver.received,
            duplicates: self.receiver.duplicates,
            router_duplicates: figures.router_duplicates,
            bytes_in: figures.bytes_in,
            bytes_out: figures.bytes_out,
            peak_rss_bytes: mem.peak_rss_bytes,
            final_rss_bytes: mem.rss_bytes,
            cpu_ns: proc_stats::cpu_ns(),
            timeline: self.life.timeline().to_vec(),
            last_snapshot: Some(last_snapshot),
        };
        self.send(&NodeMsg::Result(Box::new(result)));
        if !self.tx.close(super::CLOSE_TIMEOUT).await {
            tracing::warn!("the result may not have reached the orchestrator");
        }
    }
}

/// The node failed before it had a swarm: report what there is.
pub(super) async fn fail_before_swarm(
    tx: ControlTx,
    mut life: Lifecycle,
    index: u32,
    error: String,
    close_timeout: Duration,
) -> u8 {
    tracing::error!("{error}");
    if let Some(msg) = life.fail(now_ns(), error.clone()) {
        tx.send(&msg);
    }
    let mem = proc_stats::memory();
    tx.send(&NodeMsg::Result(Box::new(NodeResult {
        index,
        peer_id: String::new(),
        exit: ExitReason::Error,
        error: Some(error),
        latency: Vec::new(),
        published: Vec::new(),
        seen: Vec::new(),
        subscriptions: Vec::new(),
        received: 0,
        duplicates: 0,
        router_duplicates: None,
        bytes_in: None,
        bytes_out: None,
        peak_rss_bytes: mem.peak_rss_bytes,
        final_rss_bytes: mem.rss_bytes,
        cpu_ns: proc_stats::cpu_ns(),
        timeline: life.timeline().to_vec(),
        last_snapshot: None,
    })));
    tx.close(close_timeout).await;
    exit::FAILED
}
