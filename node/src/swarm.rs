//! The libp2p swarm: TCP + noise (or plaintext) + yamux, and a behaviour of gossipsub or
//! floodsub (per the group's variant) plus identify and ping.

use crate::security::Labelled;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport};
use libp2p::core::upgrade::Version;
use libp2p::gossipsub::{self, IdentityTransform, MessageAuthenticity, MessageId};
use libp2p::identity::Keypair;
use libp2p::metrics::Registry;
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{PeerId, Swarm, SwarmBuilder, floodsub, identify, noise, ping, plaintext, tcp, yamux};
use std::time::Duration;
use testbed_contract::plan::{GossipsubParams, Security, ValidationMode, Variant};

pub type Gossipsub = gossipsub::Behaviour<IdentityTransform, gossipsub::AllowAllSubscriptionFilter>;

/// Exactly one of `gossipsub` and `floodsub` is enabled. `Toggle` keeps one concrete swarm
/// type for both variants, so the event loop is written once.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub gossipsub: Toggle<Gossipsub>,
    pub floodsub: Toggle<floodsub::Behaviour>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
}

/// Identify's protocol version: peers of other testbed implementations announce the same.
const IDENTIFY_PROTOCOL: &str = "/pubsub-testbed/1.0.0";

#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("invalid gossipsub parameters: {0}")]
    Params(String),
    #[error("cannot build the libp2p swarm: {0}")]
    Build(String),
}

/// TCP (no Nagle: pubsub frames are small and latency is what is measured), the group's
/// security, yamux: the same upgrade path as `SwarmBuilder::with_tcp`, with the security
/// chosen at run time.
fn transport(
    key: &Keypair,
    security: Security,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let tcp =
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)).upgrade(Version::V1Lazy);
    Ok(match security {
        Security::Noise => tcp
            .authenticate(Labelled::new(noise::Config::new(key)?, security))
            .multiplex(yamux::Config::default())
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
        Security::Plaintext => tcp
            .authenticate(Labelled::new(plaintext::Config::new(key), security))
            .multiplex(yamux::Config::default())
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
    })
}

/// Builds the swarm. Metrics (transport bandwidth, gossipsub router counters) go to `registry`.
pub fn build(
    variant: Variant,
    params: &GossipsubParams,
    security: Security,
    registry: &mut Registry,
) -> Result<Swarm<Behaviour>, SwarmError> {
    let gossipsub_config = match variant {
        Variant::Gossipsub => Some(gossipsub_config(params)?),
        Variant::Floodsub => None,
    };
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| transport(key, security))
        .map_err(|e| SwarmError::Build(e.to_string()))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| {
            let gossipsub = match gossipsub_config {
                Some(cfg) => {
                    let authenticity = match params.validation {
                        ValidationMode::Strict | ValidationMode::Permissive => {
                            MessageAuthenticity::Signed(key.clone())
                        }
                        // Unsigned modes publish without author and sequence number.
                        ValidationMode::Anonymous | ValidationMode::None => {
                            MessageAuthenticity::Anonymous
                        }
                    };
                    let g = Gossipsub::new(authenticity, cfg)?.with_metrics(
                        registry.sub_registry_with_prefix("gossipsub"),
                        gossipsub::MetricsConfig::default(),
                    );
                    Some(g)
                }
                None => None,
            };
            let floodsub = match variant {
                Variant::Floodsub => Some(floodsub::Behaviour::new(key.public().to_peer_id())),
                Variant::Gossipsub => None,
            };
            Ok(Behaviour {
                gossipsub: gossipsub.into(),
                floodsub: floodsub.into(),
                // No address cache: the node dials only what the orchestrator names, and a
                // cache would let floodsub silently re-dial peers after a `disconnect`.
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                        .with_cache_size(0),
                ),
                ping: ping::Behaviour::default(),
            })
        })
        .map_err(|e| SwarmError::Build(e.to_string()))?
        // Connections must outlive quiet phases of a run: only `disconnect` closes them.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(u64::MAX)))
        // Handshakes of hundreds of nodes on a few cores take seconds: allow a dial its budget.
        .with_connection_timeout(crate::dialer::DIAL_BUDGET)
        .build();
    Ok(swarm)
}

/// Maps every plan parameter onto gossipsub's builder, checking the invariants gossipsub
/// assumes but (in 0.50.1) only checks for per-topic overrides.
pub fn gossipsub_config(p: &GossipsubParams) -> Result<gossipsub::Config, SwarmError> {
    let bad = |what: String| Err(SwarmError::Params(what));
    if !(p.mesh_outbound_min <= p.mesh_n_low
        && p.mesh_n_low <= p.mesh_n
        && p.mesh_n <= p.mesh_n_high)
    {
        return bad(format!(
            "need mesh_outbound_min ({}) <= mesh_n_low ({}) <= mesh_n ({}) <= mesh_n_high ({})",
            p.mesh_outbound_min, p.mesh_n_low, p.mesh_n, p.mesh_n_high
        ));
    }
    if p.mesh_outbound_min * 2 > p.mesh_n {
        return bad(format!(
            "need mesh_outbound_min * 2 ({}) <= mesh_n ({})",
            p.mesh_outbound_min * 2,
            p.mesh_n
        ));
    }
    if p.heartbeat.is_zero() {
        return bad("heartbeat must be longer than 0".into());
    }
    if !(0.0..=1.0).contains(&p.gossip_factor) {
        return bad(format!("gossip_factor {} is not in 0..=1", p.gossip_factor));
    }

    let mut b = gossipsub::ConfigBuilder::default();
    b.mesh_n(p.mesh_n as usize)
        .mesh_n_low(p.mesh_n_low as usize)
        .mesh_n_high(p.mesh_n_high as usize)
        .mesh_outbound_min(p.mesh_outbound_min as usize)
        .gossip_lazy(p.gossip_lazy as usize)
        .gossip_factor(p.gossip_factor)
        .heartbeat_interval(p.heartbeat)
        .heartbeat_initial_delay(p.heartbeat_initial_delay)
        .history_length(p.history_length as usize)
        .history_gossip(p.history_gossip as usize)
        .fanout_ttl(p.fanout_ttl)
        .flood_publish(p.flood_publish)
        .max_transmit_size(p.max_transmit_size as usize)
        .validation_mode(match p.validation {
            ValidationMode::Strict => gossipsub::ValidationMode::Strict,
            ValidationMode::Permissive => gossipsub::ValidationMode::Permissive,
            ValidationMode::Anonymous => gossipsub::ValidationMode::Anonymous,
            ValidationMode::None => gossipsub::ValidationMode::None,
        });
    b.message_id_fn(message_id);
    b.build().map_err(|e| SwarmError::Params(e.to_string()))
}

/// The id every implementation of a mixed fleet computes alike, so gossip (IHAVE/IWANT) names
/// the same message the same way everywhere. A message with an author and a sequence number
/// gets go-libp2p-pubsub's and js-libp2p's default, author peer-id bytes ‖ 8-byte big-endian
/// sequence number (rust-libp2p's own default is base58 text plus a decimal number, which Go
/// and JS peers would never recognise); an unsigned one, whose author and number are absent,
/// gets [`unsigned_message_id`].
fn message_id(m: &gossipsub::Message) -> MessageId {
    match (m.source, m.sequence_number) {
        (Some(source), Some(seq)) => {
            let mut id = source.to_bytes();
            id.extend_from_slice(&seq.to_be_bytes());
            MessageId::new(&id)
        }
        _ => unsigned_message_id(m),
    }
}

/// Id of an unsigned message: its (origin, seq) from the payload header, which is unique per
/// message in a run; anything else is identified by its whole content.
fn unsigned_message_id(m: &gossipsub::Message) -> MessageId {
    use testbed_contract::payload::{HEADER_LEN, MAGIC};
    if m.data.len() >= HEADER_LEN && m.data[..2] == MAGIC {
        MessageId::new(&m.data[4..16])
    } else {
        MessageId::new(&m.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_map_onto_gossipsub() {
        let p = GossipsubParams::default();
        let c = gossipsub_config(&p).unwrap();
        assert_eq!(c.mesh_n(), 6);
        assert_eq!(c.mesh_n_low(), 5);
        assert_eq!(c.mesh_n_high(), 12);
        assert_eq!(c.mesh_outbound_min(), 2);
        assert_eq!(c.gossip_lazy(), 6);
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(1));
        assert_eq!(c.heartbeat_initial_delay(), Duration::from_millis(100));
        assert_eq!(c.history_length(), 5);
        assert_eq!(c.history_gossip(), 3);
        assert_eq!(c.fanout_ttl(), Duration::from_secs(60));
        assert!(c.flood_publish());
        assert_eq!(c.max_transmit_size(), 1 << 20);
        assert!(matches!(
            c.validation_mode(),
            gossipsub::ValidationMode::Strict
        ));
    }

    #[test]
    fn every_field_is_mapped() {
        let p = GossipsubParams {
            mesh_n: 8,
            mesh_n_low: 4,
            mesh_n_high: 16,
            mesh_outbound_min: 3,
            gossip_lazy: 7,
            gossip_factor: 0.5,
            heartbeat: Duration::from_millis(700),
            heartbeat_initial_delay: Duration::from_millis(5),
            history_length: 9,
            history_gossip: 4,
            fanout_ttl: Duration::from_secs(3),
            flood_publish: false,
            validation: ValidationMode::Anonymous,
            max_transmit_size: 4096,
        };
        let c = gossipsub_config(&p).unwrap();
        assert_eq!(
            (
                c.mesh_n(),
                c.mesh_n_low(),
                c.mesh_n_high(),
                c.mesh_outbound_min()
            ),
            (8, 4, 16, 3)
        );
        assert_eq!(c.gossip_lazy(), 7);
        assert_eq!(c.gossip_factor(), 0.5);
        assert_eq!(c.heartbeat_interval(), Duration::from_millis(700));
        assert_eq!(c.heartbeat_initial_delay(), Duration::from_millis(5));
        assert_eq!((c.history_length(), c.history_gossip()), (9, 4));
        assert_eq!(c.fanout_ttl(), Duration::from_secs(3));
        assert!(!c.flood_publish());
        assert_eq!(c.max_transmit_size(), 4096);
        assert!(matches!(
            c.validation_mode(),
            gossipsub::ValidationMode::Anonymous
        ));
    }

    #[test]
    fn broken_mesh_parameters_are_refused() {
        let p = GossipsubParams {
            mesh_n_low: 7,
            ..GossipsubParams::default()
        };
        let e = gossipsub_config(&p).unwrap_err().to_string();
        assert!(e.contains("mesh_n_low (7)"), "{e}");
        let p = GossipsubParams {
            mesh_n: 3,
            mesh_n_low: 2,
            ..GossipsubParams::default()
        };
        assert!(gossipsub_config(&p).is_err());
    }

    #[test]
    fn unsigned_ids_follow_origin_and_seq() {
        use testbed_contract::payload::Header;
        let msg = |origin, seq, publish_ns| gossipsub::Message {
            source: None,
            data: Header::unpaced(origin, seq, publish_ns).encode(64),
            sequence_number: None,
            topic: gossipsub::TopicHash::from_raw("t"),
        };
        assert_eq!(
            unsigned_message_id(&msg(1, 2, 3)),
            unsigned_message_id(&msg(1, 2, 99))
        );
        assert_ne!(
            unsigned_message_id(&msg(1, 2, 3)),
            unsigned_message_id(&msg(1, 3, 3))
        );
    }

    #[test]
    fn signed_ids_are_author_bytes_then_big_endian_seqno() {
        // go-libp2p-pubsub: DefaultMsgIdFn = string(from) + string(seqno); js-libp2p's
        // msgIdFnStrictSign is the same bytes.
        let author = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let m = gossipsub::Message {
            source: Some(author),
            data: b"anything".to_vec(),
            sequence_number: Some(0x0102_0304_0506_0708),
            topic: gossipsub::TopicHash::from_raw("t"),
        };
        let mut want = author.to_bytes();
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(message_id(&m), MessageId::new(&want));
        // Without author or number (anonymous mode) the payload names the message.
        let unsigned = gossipsub::Message {
            source: None,
            sequence_number: None,
            ..m
        };
        assert_eq!(message_id(&unsigned), unsigned_message_id(&unsigned));
    }

    #[tokio::test]
    async fn both_variants_build() {
        for v in [Variant::Gossipsub, Variant::Floodsub] {
            let mut r = Registry::default();
            let s = build(v, &GossipsubParams::default(), Security::Noise, &mut r).unwrap();
            assert_eq!(
                s.behaviour().gossipsub.is_enabled(),
                v == Variant::Gossipsub
            );
            assert_eq!(s.behaviour().floodsub.is_enabled(), v == Variant::Floodsub);
        }
    }
}
