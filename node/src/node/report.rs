//! What the node reports: snapshots, and the final result.

use super::Node;
use super::startup::PreRunEnd;
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
            rss_bytes: self.rss.rss_bytes(),
            cpu_ns: proc_stats::cpu_ns(),
            topics,
        }
    }

    /// Counters the result has no field for (see the contract), sent in the `finish` ack.
    pub(super) fn counters_info(&self, figures: &metrics::RouterFigures) -> serde_json::Value {
        let mut info = serde_json::json!({
            "malformed_payloads": self.receiver.malformed,
            "clamped_latencies": self.receiver.clamped,
            "router_failed_sends": self.net.failed_sends(),
        });
        if let Some(n) = figures.router_invalid {
            info["router_invalid_messages"] = n.into();
        }
        info
    }

    /// Moves to Done (unless failed), acks the `finish` command if there was one, sends the
    /// result as the last message, and closes.
    pub(super) async fn finish_with(
        mut self,
        exit_reason: ExitReason,
        error: Option<String>,
        finish_id: Option<u64>,
    ) {
        let last_snapshot = self.snapshot();
        let figures = metrics::read(&self.registry, self.cfg.variant == Variant::Gossipsub);
        let latency = self.receiver.latency().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot encode latency histograms; result has none");
            Vec::new()
        });
        let latency_since_send = self.receiver.latency_since_send().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot encode latency histograms; result has none");
            Vec::new()
        });
        let loop_lag = self.loop_lag.to_result().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot encode the loop lag; result has none");
            None
        });
        let publish_lag = self.log.lag().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot encode the publish lag; result has none");
            None
        });
        if self.receiver.malformed > 0 || self.receiver.clamped > 0 {
            tracing::warn!(
                malformed = self.receiver.malformed,
                clamped = self.receiver.clamped,
                "some deliveries were malformed or arrived before their publish time"
            );
        }
        self.advance(NodeState::Done, None);
        let slowest_traced_delivery = self.tel.as_ref().and_then(|t| t.slowest_delivery());
        // Flush the traces before the result: once the orchestrator has every result, it
        // may stop its collector.
        if let Some(t) = self.tel.take() {
            t.shutdown().await;
        }
        if let Some(id) = finish_id {
            self.ack(id, crate::ack::Outcome::ok(self.counters_info(&figures)));
        }
        let mem = proc_stats::memory();
        let mut result = NodeResult {
            index: self.cfg.index,
            peer_id: self.peer_id.clone(),
            exit: exit_reason,
            error,
            latency,
            latency_since_send,
            publish_lag,
            published: self.log.to_published(),
            seen: self.receiver.seen(),
            subscriptions: self.subscriptions.clone(),
            mesh: self.mesh.take(),
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
            slowest_traced_delivery,
            received_over_time: self.receiver.received_over_time(),
            loop_lag,
            first_hops: self.first_hops.to_result(),
        };
        if let Some(fault) = self.fault {
            fault.apply(&mut result);
        }
        self.send(&NodeMsg::Result(Box::new(result)));
        if !self.tx.close(super::CLOSE_TIMEOUT).await {
            tracing::warn!("the result may not have reached the orchestrator");
        }
    }
}

/// The node ends before it has a swarm (aborted or failed before or at the welcome): report
/// what there is, with empty lists.
pub(super) async fn end_before_swarm(
    tx: ControlTx,
    mut life: Lifecycle,
    index: u32,
    end: PreRunEnd,
    close_timeout: Duration,
) -> u8 {
    let (exit_reason, error, code) = match end {
        PreRunEnd::Aborted { reason, code } => {
            tracing::warn!("{reason}");
            for state in [NodeState::Draining, NodeState::Done] {
                let detail = (state == NodeState::Draining).then(|| reason.clone());
                if let Some(msg) = life.advance(state, now_ns(), detail) {
                    tx.send(&msg);
                }
            }
            (ExitReason::Aborted, reason, code)
        }
        PreRunEnd::Failed(error) => {
            tracing::error!("{error}");
            if let Some(msg) = life.fail(now_ns(), error.clone()) {
                tx.send(&msg);
            }
            (ExitReason::Error, error, exit::FAILED)
        }
    };
    let mem = proc_stats::memory();
    tx.send(&NodeMsg::Result(Box::new(NodeResult {
        index,
        peer_id: String::new(),
        exit: exit_reason,
        error: Some(error),
        latency: Vec::new(),
        latency_since_send: Vec::new(),
        publish_lag: None,
        published: Vec::new(),
        seen: Vec::new(),
        subscriptions: Vec::new(),
        mesh: None,
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
        slowest_traced_delivery: None,
        received_over_time: Vec::new(),
        loop_lag: None,
        first_hops: None,
    })));
    tx.close(close_timeout).await;
    code
}
