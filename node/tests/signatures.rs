//! Signature checking in a real node (strict validation): a peer written here speaks raw
//! gossipsub RPCs to it over a real libp2p connection, so it can send what no library peer
//! sends — a forged signature, a missing one, a forged copy of a message already received.
//!
//! The node drops duplicates before checking their signature (go-libp2p-pubsub's order, the
//! patched gossipsub in patches/libp2p-gossipsub): a forged message is still refused, a forged
//! first copy does not keep the real message out, and a forged later copy of a known message
//! is a duplicate, not an invalid message.

mod common;

use common::{Node, SCENARIO_LIMIT, config, start_with};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::identity::Keypair;
use libp2p::swarm::handler::{OneShotHandler, OneShotHandlerConfig};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, Stream,
    StreamProtocol, SubstreamProtocol, SwarmEvent, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, SwarmBuilder, noise, tcp, yamux};
use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::Duration;
use testbed_contract::payload::Header;
use testbed_contract::plan::Variant;
use testbed_contract::protocol::{Command, NodeMsg, OrchMsg};

const MESHSUB: StreamProtocol = StreamProtocol::new("/meshsub/1.1.0");
const TOPIC: &str = "t";
/// The origin index written into the payload headers.
const ORIGIN: u32 = 7;

// --- Protobuf, by hand (gossipsub's rpc.proto): just what this test sends. ------------------

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// One published message; `signature: None` leaves the field out.
struct Publish {
    from: Vec<u8>,
    data: Vec<u8>,
    seqno: u64,
    signature: Option<Vec<u8>>,
}

impl Publish {
    /// Message{from=1, data=2, seqno=3, topic=4, signature=5}, in tag order as prost writes it.
    fn encode(&self, with_signature: bool) -> Vec<u8> {
        let mut m = Vec::new();
        field(&mut m, 1, &self.from);
        field(&mut m, 2, &self.data);
        field(&mut m, 3, &self.seqno.to_be_bytes());
        field(&mut m, 4, TOPIC.as_bytes());
        if let (true, Some(sig)) = (with_signature, &self.signature) {
            field(&mut m, 5, sig);
        }
        m
    }

    /// Signed by `author` as gossipsub signs: "libp2p-pubsub:" ‖ the message without signature.
    fn signed(author: &Keypair, seq: u64) -> Publish {
        let mut p = Publish {
            from: author.public().to_peer_id().to_bytes(),
            data: Header::unpaced(ORIGIN, seq, 1_700_000_000_000_000_000).encode(64),
            seqno: seq,
            signature: None,
        };
        let mut signed = b"libp2p-pubsub:".to_vec();
        signed.extend(p.encode(false));
        p.signature = Some(author.sign(&signed).unwrap());
        p
    }

    fn forged(mut self) -> Publish {
        self.signature.as_mut().unwrap()[0] ^= 0xff;
        self
    }

    fn unsigned(mut self) -> Publish {
        self.signature = None;
        self
    }

    /// A length-prefixed RPC{publish=2: [this]}: one gossipsub frame.
    fn frame(&self) -> Vec<u8> {
        let mut rpc = Vec::new();
        field(&mut rpc, 2, &self.encode(true));
        let mut out = Vec::new();
        varint(&mut out, rpc.len() as u64);
        out.extend(rpc);
        out
    }
}

// --- A minimal libp2p peer: opens one /meshsub/1.1.0 stream and writes the frames. ----------

#[derive(Debug, Clone)]
struct Frames(Vec<u8>);

impl UpgradeInfo for Frames {
    type Info = StreamProtocol;
    type InfoIter = std::iter::Once<StreamProtocol>;
    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once(MESHSUB)
    }
}

impl OutboundUpgrade<Stream> for Frames {
    type Output = ();
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, std::io::Result<()>>;
    fn upgrade_outbound(self, mut s: Stream, _: StreamProtocol) -> Self::Future {
        Box::pin(async move {
            s.write_all(&self.0).await?;
            s.flush().await?;
            s.close().await
        })
    }
}

/// Accepts the node's own gossipsub stream and discards it (so the node sees a gossipsub peer).
#[derive(Debug, Clone, Copy)]
struct Drain;

impl UpgradeInfo for Drain {
    type Info = StreamProtocol;
    type InfoIter = std::iter::Once<StreamProtocol>;
    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once(MESHSUB)
    }
}

impl InboundUpgrade<Stream> for Drain {
    type Output = ();
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, std::io::Result<()>>;
    fn upgrade_inbound(self, mut s: Stream, _: StreamProtocol) -> Self::Future {
        Box::pin(async move {
            let mut sink = Vec::new();
            s.read_to_end(&mut sink).await.map(|_| ())
        })
    }
}

type Handler = OneShotHandler<Drain, Frames, ()>;

#[derive(Default)]
struct RawPubsub {
    to_send: VecDeque<(PeerId, Frames)>,
    /// Streams written (or failed), reported as swarm events.
    done: VecDeque<Result<(), String>>,
}

impl NetworkBehaviour for RawPubsub {
    type ConnectionHandler = Handler;
    type ToSwarm = Result<(), String>;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<Handler, ConnectionDenied> {
        Ok(handler())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<Handler, ConnectionDenied> {
        Ok(handler())
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.done.push_back(event.map_err(|e| e.to_string()));
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ToSwarm<Result<(), String>, THandlerInEvent<Self>>> {
        if let Some(r) = self.done.pop_front() {
            return Poll::Ready(ToSwarm::GenerateEvent(r));
        }
        match self.to_send.pop_front() {
            Some((peer_id, frames)) => Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::Any,
                event: frames,
            }),
            None => Poll::Pending,
        }
    }
}

fn handler() -> Handler {
    OneShotHandler::new(
        SubstreamProtocol::new(Drain, ()),
        OneShotHandlerConfig::default(),
    )
}

async fn received(n: &mut Node) -> u64 {
    let id = n.conn.next_id;
    n.conn.next_id += 1;
    n.conn
        .send(&OrchMsg::Command {
            id,
            cmd: Command::Report,
        })
        .await;
    let r = n
        .conn
        .until(|m| match m {
            NodeMsg::Snapshot(s) => Some(s.received),
            _ => None,
        })
        .await;
    n.conn.ack_of(id).await;
    r
}

#[tokio::test]
async fn forged_signatures_are_refused_and_duplicates_dropped_before_the_check() {
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let mut node = start_with(1, |i| config(i, Variant::Gossipsub))
            .await
            .remove(0);
        node.conn
            .ok(Command::Subscribe {
                topics: vec![TOPIC.into()],
                wait_mesh: false,
                mesh_timeout_ms: 1000,
            })
            .await;

        let mut peer = SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| RawPubsub::default())
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        let node_id: PeerId = node.peer_id.parse().unwrap();
        let addr: Multiaddr = format!("{}/p2p/{}", node.addr, node.peer_id)
            .parse()
            .unwrap();
        peer.dial(addr).unwrap();
        loop {
            if let SwarmEvent::ConnectionEstablished { .. } = peer.select_next_some().await {
                break;
            }
        }

        let author = Keypair::generate_ed25519();
        let frames: Vec<u8> = [
            // A forged first copy of message 1: refused, and it must not keep the real one out.
            Publish::signed(&author, 1).forged(),
            Publish::signed(&author, 1),
            Publish::signed(&author, 2),
            // A forged later copy of message 2: a duplicate, dropped before any check.
            Publish::signed(&author, 2).forged(),
            // No signature at all in strict mode: refused.
            Publish::signed(&author, 3).unsigned(),
        ]
        .iter()
        .flat_map(Publish::frame)
        .collect();
        peer.behaviour_mut()
            .to_send
            .push_back((node_id, Frames(frames)));
        // Drive the peer until its stream is written, then until the node has both messages
        // (the peer keeps running so the connection stays up).
        loop {
            if let SwarmEvent::Behaviour(written) = peer.select_next_some().await {
                assert_eq!(written, Ok(()));
                break;
            }
        }
        loop {
            tokio::select! {
                _ = peer.select_next_some() => {}
                got = received(&mut node) => {
                    if got >= 2 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }

        let id = node.conn.next_id;
        node.conn
            .send(&OrchMsg::Command {
                id,
                cmd: Command::Finish,
            })
            .await;
        let result = node.conn.result().await;
        let (ok, _, info) = node
            .conn
            .seen
            .iter()
            .find_map(|m| match m {
                NodeMsg::Ack {
                    id: got,
                    ok,
                    error,
                    info,
                } if *got == id => Some((*ok, error.clone(), info.clone())),
                _ => None,
            })
            .expect("finish ack");
        assert!(ok);
        // Messages 1 and 2 were delivered, once each; 3 was not.
        assert_eq!(result.received, 2);
        assert_eq!(result.seen.len(), 1);
        assert_eq!(result.seen[0].origin, ORIGIN);
        assert_eq!(result.seen[0].ranges, vec![[1, 2]]);
        // The forged first copy and the unsigned message were refused as invalid; the forged
        // copy of message 2 was a duplicate (checking signatures before the duplicate cache,
        // as upstream does, would count it as invalid: 3 invalid, 0 duplicates).
        assert_eq!(info["router_invalid_messages"], 2, "{info}");
        assert_eq!(result.router_duplicates, Some(1));
    })
    .await
    .expect("the scenario finishes");
}
