//! From process start to `listening`: hello, welcome, and the libp2p listener.

use super::{Node, Signals};
use crate::ack::Outcome;
use crate::clock::now_ns;
use crate::config::EnvConfig;
use crate::control::{ControlRx, ControlTx, Incoming};
use crate::exit;
use crate::lifecycle::Lifecycle;
use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use std::net::IpAddr;
use std::time::Duration;
use testbed_contract::PROTOCOL_VERSION;
use testbed_contract::protocol::{NodeConfig, NodeMsg, OrchMsg};
use testbed_contract::results::NodeState;

/// Announced in `hello`: the libraries this node is built on (kept in step with Cargo.lock).
pub const IMPL_VERSION: &str =
    "rust-libp2p 0.57.1, libp2p-gossipsub 0.50.1, libp2p-floodsub 0.48.0";
/// How long the OS may take to report the listen address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Listening on an unspecified address reports one address per interface: collect those that
/// arrive within this quiet period after the first.
const MORE_ADDRS_WINDOW: Duration = Duration::from_millis(100);

/// How long the node waits for the orchestrator's welcome before it fails.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(60);

pub enum Handshake {
    Welcome(Box<NodeConfig>),
    /// End before the run started: a bare result (no swarm yet) with this exit reason.
    End(PreRunEnd),
    /// The channel is gone: exit with this code, nobody to report to.
    Lost(u8),
}

/// Why a node ends before it has a swarm.
pub enum PreRunEnd {
    Aborted { reason: String, code: u8 },
    Failed(String),
}

/// Says hello (and `starting`), then waits for the orchestrator's welcome.
pub async fn handshake(
    env: &EnvConfig,
    tx: &ControlTx,
    rx: &mut ControlRx,
    signals: &mut Signals,
    life: &Lifecycle,
) -> Handshake {
    tx.send(&NodeMsg::Hello {
        protocol: PROTOCOL_VERSION,
        index: env.index,
        pid: std::process::id(),
        implementation: "rust".into(),
        impl_version: IMPL_VERSION.into(),
        secret: env.secret.clone(),
    });
    tx.send(&life.last_msg());
    let deadline = tokio::time::Instant::now() + WELCOME_TIMEOUT;
    loop {
        let incoming = tokio::select! {
            r = rx.recv() => r,
            (name, code) = signals.recv() => {
                return Handshake::End(PreRunEnd::Aborted { reason: format!("stopped by {name}"), code });
            }
            () = tokio::time::sleep_until(deadline) => {
                return Handshake::End(PreRunEnd::Failed(format!(
                    "no welcome from the orchestrator within {} s",
                    WELCOME_TIMEOUT.as_secs()
                )));
            }
        };
        match incoming {
            Ok(Some(Incoming::Msg(OrchMsg::Welcome { protocol, config }))) => {
                if protocol != PROTOCOL_VERSION {
                    return Handshake::End(PreRunEnd::Failed(format!(
                        "the orchestrator speaks control protocol {protocol}, this node {PROTOCOL_VERSION}"
                    )));
                }
                if config.index != env.index {
                    return Handshake::End(PreRunEnd::Failed(format!(
                        "the welcome is for node {}, but this node's index is {} (from the environment)",
                        config.index, env.index
                    )));
                }
                return Handshake::Welcome(config);
            }
            Ok(Some(Incoming::Msg(OrchMsg::Abort { reason }))) => {
                return Handshake::End(PreRunEnd::Aborted {
                    reason: format!("aborted by the orchestrator: {reason}"),
                    code: exit::OK,
                });
            }
            Ok(Some(Incoming::Msg(OrchMsg::Command { id, .. })))
            | Ok(Some(Incoming::Unknown {
                command_id: Some(id),
                ..
            })) => {
                tx.send(&Outcome::failed("no welcome received yet").into_ack(id));
            }
            Ok(Some(other)) => {
                tracing::warn!(?other, "unexpected message before welcome; ignored");
            }
            Ok(None) => {
                tracing::error!("the orchestrator closed the control channel before welcome");
                return Handshake::Lost(exit::CONTROL);
            }
            Err(e) => {
                tracing::error!("{e}");
                return Handshake::Lost(exit::CONTROL);
            }
        }
    }
}

impl Node {
    /// Listens on an OS-assigned TCP port and reports the real addresses.
    pub(super) async fn listen(&mut self, ip: IpAddr) -> Result<(), String> {
        let addr: Multiaddr = Multiaddr::from(ip).with(Protocol::Tcp(0));
        self.net
            .swarm
            .listen_on(addr.clone())
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let mut addrs: Vec<Multiaddr> = Vec::new();
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        loop {
            // Once one address is known, wait only briefly for more (unspecified IPs only).
            let until = if addrs.is_empty() {
                deadline
            } else {
                tokio::time::Instant::now() + MORE_ADDRS_WINDOW
            };
            let ev = match tokio::time::timeout_at(until, self.net.swarm.select_next_some()).await {
                Ok(ev) => ev,
                Err(_) if addrs.is_empty() => {
                    return Err(format!(
                        "no listen address reported within {} s for {addr}",
                        LISTEN_TIMEOUT.as_secs()
                    ));
                }
                Err(_) => break,
            };
            match ev {
                SwarmEvent::NewListenAddr { address, .. } => {
                    addrs.push(address);
                    if !ip.is_unspecified() {
                        break;
                    }
                }
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(format!("listener on {addr} closed: {reason:?}"));
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(format!("listener on {addr} failed: {error}"));
                }
                other => {
                    // Nobody knows our address yet, so little else can happen; keep any
                    // bookkeeping consistent anyway.
                    let _ = self.on_swarm_event(other);
                }
            }
        }
        self.send(&NodeMsg::Listening {
            peer_id: self.peer_id.clone(),
            listen_addrs: addrs.iter().map(|a| a.to_string()).collect(),
            metrics_addr: self.metrics_addr.clone(),
        });
        self.advance(NodeState::Listening, None);
        tracing::info!(peer_id = %self.peer_id, ?addrs, at_ns = now_ns(), "listening");
        Ok(())
    }
}
