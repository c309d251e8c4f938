//! `connect` and `disconnect`: dials with a few retries, acknowledged once every dial has a
//! result; disconnects acknowledged once the connections are gone.

use crate::ack::Outcome;
use crate::pubsub::Pubsub;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId};
use std::time::Duration;
use testbed_contract::protocol::PeerAddr;
use tokio::time::Instant;

/// Attempts per peer, and the pause before each retry. Retries are for quick failures (a
/// peer not listening yet); no retry starts once `DIAL_BUDGET` has passed since the first.
const ATTEMPTS: u32 = 3;
const BACKOFF: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(600)];
/// How long one peer may take to connect (the swarm's connection timeout is the same).
pub const DIAL_BUDGET: Duration = Duration::from_secs(30);
/// How long a `disconnect` may take before it is reported as failed.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum DialState {
    Dialing(ConnectionId),
    RetryAt(Instant),
    Connected,
    Failed(String),
}

#[derive(Debug)]
struct Target {
    index: u32,
    /// None when the orchestrator's peer id or address did not parse (state is Failed).
    peer: Option<PeerId>,
    addr: Multiaddr,
    /// As the orchestrator wrote them, for error messages.
    named: String,
    attempts: u32,
    first_attempt: Option<Instant>,
    state: DialState,
}

/// A `connect` command in progress.
#[derive(Debug)]
pub struct ConnectOp {
    pub cmd_id: u64,
    targets: Vec<Target>,
}

impl ConnectOp {
    /// Starts dialing every peer.
    pub fn start(cmd_id: u64, peers: &[PeerAddr], net: &mut Pubsub) -> Self {
        let targets = peers
            .iter()
            .map(|p| {
                let parsed = p
                    .peer_id
                    .parse::<PeerId>()
                    .map_err(|e| format!("bad peer id {:?}: {e}", p.peer_id))
                    .and_then(|peer| {
                        let addr = p
                            .addr
                            .parse::<Multiaddr>()
                            .map_err(|e| format!("bad address {:?}: {e}", p.addr))?;
                        Ok((peer, addr))
                    });
                let (peer, addr, state) = match parsed {
                    Ok((peer, addr)) => (Some(peer), addr, DialState::RetryAt(Instant::now())),
                    Err(e) => (None, Multiaddr::empty(), DialState::Failed(e)),
                };
                Target {
                    index: p.index,
                    peer,
                    addr,
                    named: format!("{} at {}", p.peer_id, p.addr),
                    attempts: 0,
                    first_attempt: None,
                    state,
                }
            })
            .collect();
        let mut op = ConnectOp { cmd_id, targets };
        op.poll(Instant::now(), net);
        op
    }

    /// A connection to `peer` was established (by our dial or by theirs: either satisfies).
    pub fn on_established(&mut self, peer: &PeerId) {
        for t in &mut self.targets {
            if t.peer == Some(*peer)
                && matches!(t.state, DialState::Dialing(_) | DialState::RetryAt(_))
            {
                t.state = DialState::Connected;
            }
        }
    }

    pub fn on_dial_error(&mut self, id: ConnectionId, error: &DialError, net: &Pubsub) {
        for t in &mut self.targets {
            if matches!(t.state, DialState::Dialing(c) if c == id) {
                // A dial can fail because the peer dialed us at the same moment.
                t.state = if t.peer.is_some_and(|p| net.swarm.is_connected(&p)) {
                    DialState::Connected
                } else {
                    retry_or_fail(t, error.to_string())
                };
            }
        }
    }

    /// Starts due retries; returns when to look again (None: nothing scheduled).
    pub fn poll(&mut self, now: Instant, net: &mut Pubsub) -> Option<Instant> {
        let mut wake = None::<Instant>;
        for t in &mut self.targets {
            let (DialState::RetryAt(at), Some(peer)) = (&t.state, t.peer) else {
                continue;
            };
            let at = *at;
            if at > now {
                wake = Some(wake.map_or(at, |w| w.min(at)));
                continue;
            }
            t.attempts += 1;
            t.first_attempt.get_or_insert(now);
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![t.addr.clone()])
                .condition(PeerCondition::Disconnected)
                .build();
            let id = opts.connection_id();
            t.state = match net.swarm.dial(opts) {
                Ok(()) => DialState::Dialing(id),
                // Only refused because we are already connected.
                Err(DialError::DialPeerConditionFalse(_)) => DialState::Connected,
                Err(e) => retry_or_fail(t, e.to_string()),
            };
            if let DialState::RetryAt(at) = t.state {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        wake
    }

    /// The outcome once every dial has a result.
    pub fn outcome(&self) -> Option<Outcome> {
        let mut connected = 0;
        let mut failures = Vec::new();
        for t in &self.targets {
            match &t.state {
                DialState::Connected => connected += 1,
                DialState::Failed(e) => failures.push(format!(
                    "node {} ({}): {e} (attempts: {})",
                    t.index, t.named, t.attempts
                )),
                DialState::Dialing(_) | DialState::RetryAt(_) => return None,
            }
        }
        Some(Outcome {
            error: (!failures.is_empty())
                .then(|| format!("could not connect to {}", failures.join("; "))),
            info: serde_json::json!({ "connected": connected, "failed": failures.len() }),
        })
    }
}

fn retry_or_fail(t: &Target, error: String) -> DialState {
    let now = Instant::now();
    let in_budget = t
        .first_attempt
        .is_some_and(|first| now.duration_since(first) < DIAL_BUDGET);
    match BACKOFF.get(t.attempts as usize - 1) {
        Some(pause) if t.attempts < ATTEMPTS && in_budget => DialState::RetryAt(now + *pause),
        _ => DialState::Failed(error),
    }
}

/// A `disconnect` command in progress.
#[derive(Debug)]
pub struct DisconnectOp {
    pub cmd_id: u64,
    peers: Vec<PeerId>,
    deadline: Instant,
    bad: Vec<String>,
}

impl DisconnectOp {
    pub fn start(cmd_id: u64, peers: &[PeerAddr], net: &mut Pubsub) -> Self {
        let mut ids = Vec::new();
        let mut bad = Vec::new();
        for p in peers {
            match p.peer_id.parse::<PeerId>() {
                Ok(peer) => {
                    net.forget_peer(&peer);
                    // Err only means "not connected", which is what we want.
                    let _ = net.swarm.disconnect_peer_id(peer);
                    ids.push(peer);
                }
                Err(e) => bad.push(format!("bad peer id {:?}: {e}", p.peer_id)),
            }
        }
        DisconnectOp {
            cmd_id,
            peers: ids,
            deadline: Instant::now() + DISCONNECT_TIMEOUT,
            bad,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn outcome(&self, now: Instant, net: &Pubsub) -> Option<Outcome> {
        let still: Vec<_> = self
            .peers
            .iter()
            .filter(|p| net.swarm.is_connected(p))
            .collect();
        if !still.is_empty() && now < self.deadline {
            return None;
        }
        let mut errors = self.bad.clone();
        if !still.is_empty() {
            errors.push(format!(
                "still connected after {} s to {}",
                DISCONNECT_TIMEOUT.as_secs(),
                still
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Some(Outcome {
            error: (!errors.is_empty()).then(|| errors.join("; ")),
            info: serde_json::Value::Null,
        })
    }
}
