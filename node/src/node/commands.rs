//! The orchestrator's commands. Quick ones are answered here; the others become jobs that
//! `Node::progress` steps until they can be answered.

use super::{End, Node};
use crate::ack::Outcome;
use crate::clock::now_ns;
use crate::dialer::{ConnectOp, DisconnectOp};
use crate::fault::Fault;
use crate::mesh_wait::MeshWait;
use crate::publisher::PublishJob;
use std::time::Duration;
use testbed_contract::plan::Variant;
use testbed_contract::protocol::{Command, NodeMsg};
use testbed_contract::results::{NodeState, Subscription};
use tokio::time::Instant;

/// A topic nobody subscribes to is not waited for, but only after this long (at least one
/// gossipsub heartbeat): the peers' SUBSCRIBE messages may still be on their way.
const MIN_SUBSCRIBE_GRACE: Duration = Duration::from_secs(1);

impl Node {
    pub(super) fn on_command(&mut self, id: u64, cmd: Command) -> Option<End> {
        tracing::debug!(id, ?cmd, "command");
        match cmd {
            Command::Connect { .. } if self.fault == Some(Fault::StallConnect) => {
                tracing::warn!(id, "test aid: this connect is never acknowledged");
            }
            Command::Connect { peers } => {
                let op = ConnectOp::start(id, &peers, &mut self.net);
                self.connects.push(op);
            }
            Command::Disconnect { peers } => {
                let op = DisconnectOp::start(id, &peers, &mut self.net);
                self.disconnects.push(op);
            }
            Command::Subscribe {
                topics,
                wait_mesh,
                mesh_timeout_ms,
            } => self.subscribe(id, topics, wait_mesh, mesh_timeout_ms),
            Command::Unsubscribe { topics } => self.unsubscribe(id, &topics),
            Command::Publish {
                topic,
                count,
                rate,
                size,
                peer_timeout_ms,
            } => {
                let max_payload = self
                    .net
                    .max_payload(&topic, self.cfg.gossipsub.max_transmit_size as usize);
                match PublishJob::new(
                    id,
                    topic,
                    count,
                    rate,
                    size,
                    Duration::from_millis(peer_timeout_ms),
                    max_payload,
                    &mut self.log,
                    Instant::now(),
                ) {
                    Ok(job) => self.publishes.push(job),
                    Err(e) => self.ack(id, Outcome::failed(e.to_string())),
                }
            }
            Command::Report => {
                let snapshot = self.snapshot();
                self.send(&NodeMsg::Snapshot(snapshot));
                self.ack(id, Outcome::ok(serde_json::Value::Null));
            }
            Command::Clock { offset_ns } => {
                crate::clock::set_correction(offset_ns);
                self.ack(id, Outcome::ok(serde_json::Value::Null));
            }
            Command::Finish => return Some(End::Finish(id)),
        }
        None
    }

    fn subscribe(&mut self, id: u64, topics: Vec<String>, wait_mesh: bool, timeout_ms: u64) {
        let at_ns = now_ns();
        let mut errors = Vec::new();
        for t in &topics {
            match self.net.subscribe(t) {
                Ok(true) => self.subscriptions.push(Subscription {
                    topic: t.clone(),
                    from_ns: at_ns,
                    to_ns: None,
                }),
                Ok(false) => {} // already subscribed: the open span goes on
                Err(e) => errors.push(e),
            }
        }
        if let Some(t) = self.tel.as_mut() {
            for topic in &topics {
                t.event(
                    "subscribed",
                    vec![opentelemetry::KeyValue::new("topic", topic.clone())],
                );
            }
        }
        if !errors.is_empty() {
            self.ack(id, Outcome::failed(errors.join("; ")));
            return;
        }
        self.advance(NodeState::Subscribed, None);
        if !wait_mesh {
            self.ack(id, Outcome::ok(serde_json::Value::Null));
            return;
        }
        let p = &self.cfg.gossipsub;
        let grace = (p.heartbeat_initial_delay + p.heartbeat).max(MIN_SUBSCRIBE_GRACE);
        let full_mesh = match self.cfg.variant {
            Variant::Gossipsub => p.mesh_n_low,
            Variant::Floodsub => 1,
        };
        self.mesh_waits.push(MeshWait::new(
            id,
            topics,
            Instant::now(),
            Duration::from_millis(timeout_ms),
            grace,
            full_mesh,
        ));
    }

    fn unsubscribe(&mut self, id: u64, topics: &[String]) {
        let at_ns = now_ns();
        let mut closed = 0;
        for t in topics {
            if let Some(tel) = self.tel.as_mut() {
                tel.event(
                    "unsubscribed",
                    vec![opentelemetry::KeyValue::new("topic", t.clone())],
                );
            }
            self.net.unsubscribe(t);
            for s in self
                .subscriptions
                .iter_mut()
                .filter(|s| &s.topic == t && s.to_ns.is_none())
            {
                s.to_ns = Some(at_ns);
                closed += 1;
            }
        }
        self.ack(
            id,
            Outcome::ok(serde_json::json!({ "unsubscribed": closed })),
        );
    }
}
