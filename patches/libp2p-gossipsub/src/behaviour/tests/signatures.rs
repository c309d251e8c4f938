// PATCHED (pubsub-testbed): tests of `ConfigBuilder::verify_signatures_after_duplicate_check`.

//! With `verify_signatures_after_duplicate_check`, a message's signature is checked once, when
//! it is not a duplicate: a copy of a known message is dropped without a check, a message with
//! a bad signature is still refused, and a refused message does not enter the duplicate cache
//! (a forged first copy cannot keep the real one out).

use super::*;
use crate::{config::ConfigBuilder, types::RpcIn};

fn config() -> Config {
    ConfigBuilder::default()
        .verify_signatures_after_duplicate_check(true)
        .build()
        .unwrap()
}

/// A message on `topic` signed by another peer than the one under test.
fn signed_message(topic: &TopicHash, data: &[u8]) -> RawMessage {
    let mut author: Behaviour = Behaviour::new(
        MessageAuthenticity::Signed(libp2p_identity::Keypair::generate_ed25519()),
        Config::default(),
    )
    .unwrap();
    author
        .build_raw_message(topic.clone(), data.to_vec())
        .unwrap()
}

fn corrupted(mut m: RawMessage) -> RawMessage {
    let sig = m.signature.as_mut().unwrap();
    sig[0] ^= 0xff;
    m
}

fn receive(gs: &mut Behaviour, from: PeerId, message: RawMessage) {
    gs.on_connection_handler_event(
        from,
        ConnectionId::new_unchecked(0),
        HandlerEvent::Message {
            rpc: RpcIn {
                messages: vec![message],
                subscriptions: vec![],
                control_msgs: vec![],
                #[cfg(feature = "partial-messages")]
                partial_message: None,
            },
            invalid_messages: vec![],
        },
    );
}

fn delivered(gs: &mut Behaviour) -> usize {
    let n = gs
        .events
        .iter()
        .filter(|e| matches!(e, ToSwarm::GenerateEvent(Event::Message { .. })))
        .count();
    gs.events.clear();
    n
}

#[test]
fn a_bad_signature_is_refused_and_does_not_block_the_real_message() {
    let (mut gs, peers, _queues, topics) = DefaultBehaviourTestBuilder::default()
        .peer_no(2)
        .topics(vec!["t".into()])
        .to_subscribe(true)
        .gs_config(config())
        .create_network();
    let real = signed_message(&topics[0], b"hello");
    // A forged copy first: refused, and its id is not taken.
    receive(&mut gs, peers[0], corrupted(real.clone()));
    assert_eq!(delivered(&mut gs), 0);
    // The real message after it is delivered.
    receive(&mut gs, peers[1], real);
    assert_eq!(delivered(&mut gs), 1);
}

#[test]
fn duplicates_are_dropped_before_their_signature_is_checked() {
    let (mut gs, peers, _queues, topics) = DefaultBehaviourTestBuilder::default()
        .peer_no(2)
        .topics(vec!["t".into()])
        .to_subscribe(true)
        .gs_config(config())
        .create_network();
    let real = signed_message(&topics[0], b"hello");
    receive(&mut gs, peers[0], real.clone());
    assert_eq!(delivered(&mut gs), 1);
    // A later copy under the same id is a duplicate, whatever its signature: go-libp2p-pubsub
    // drops it by its id too. It is not delivered, and it is not counted as invalid (it was
    // not checked); upstream order would have refused it as invalid.
    receive(&mut gs, peers[1], corrupted(real.clone()));
    receive(&mut gs, peers[1], real);
    assert_eq!(delivered(&mut gs), 0);
}

#[test]
fn unsigned_messages_are_refused_in_strict_mode() {
    let (mut gs, peers, _queues, topics) = DefaultBehaviourTestBuilder::default()
        .peer_no(1)
        .topics(vec!["t".into()])
        .to_subscribe(true)
        .gs_config(config())
        .create_network();
    let mut m = signed_message(&topics[0], b"hello");
    m.signature = None;
    receive(&mut gs, peers[0], m);
    assert_eq!(delivered(&mut gs), 0);
}

#[test]
fn the_codec_leaves_signatures_to_the_behaviour_only_when_asked() {
    use asynchronous_codec::{Decoder, Encoder};
    use bytes::BytesMut;

    use crate::protocol::GossipsubCodec;

    let topic = TopicHash::from_raw("t");
    let forged = corrupted(signed_message(&topic, b"hello"));
    let decode = |check: bool| {
        let mut codec =
            GossipsubCodec::new(1 << 20, ValidationMode::Strict, HashMap::new(), 500, 16384)
                .check_signatures(check);
        let rpc = proto::Rpc {
            publish: vec![forged.clone().into()],
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        codec.encode(rpc, &mut buf).unwrap();
        match codec.decode(&mut buf).unwrap().unwrap() {
            HandlerEvent::Message {
                rpc,
                invalid_messages,
            } => (rpc.messages.len(), invalid_messages.len()),
            _ => panic!("a message"),
        }
    };
    assert_eq!(decode(true), (0, 1), "upstream: refused while decoding");
    assert_eq!(decode(false), (1, 0), "patched: passed on, checked by the behaviour");
}
