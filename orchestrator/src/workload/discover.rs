//! A subscribe phase's peer finding without a dial plan: the orchestrator acts as the mock
//! discovery service ([`MockDiscovery`]) — each subscriber registers for its topics and dials
//! every peer registered for them before it, as go-libp2p-pubsub's discovery does with a
//! limit as large as the fleet — and the readiness wait on every other subscriber being known
//! (go-libp2p-pubsub's `MinTopicSize`), read from the nodes' own snapshots.

use crate::churn::discovery::MockDiscovery;
use crate::fleet::{AckTally, Fleet, Stop};
use crate::progress::Progress;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use testbed_contract::protocol::Command;
use tokio::time::Instant;

/// Registers `targets` (in index order) for `topics`; each dials the members registered
/// before it. Returns when every dial is acknowledged.
pub async fn dial_registered(
    fleet: &mut Fleet,
    progress: &Progress,
    service: &mut MockDiscovery,
    targets: &[u32],
    topics: &[String],
) -> Result<(), Stop> {
    // The picks take every member, so the order the generator gives does not matter.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut ids = Vec::new();
    for &i in targets {
        let found: BTreeSet<u32> = topics
            .iter()
            .flat_map(|t| service.find(t, usize::MAX, i, &mut rng))
            .collect();
        service.register(i);
        for t in topics {
            service.announce(i, t);
        }
        let peers = found
            .iter()
            .filter_map(|&p| fleet.node(p)?.peer_addr())
            .collect();
        if let Some(id) = fleet.command(i, Command::Connect { peers }) {
            ids.push(id);
        }
    }
    progress.stage("discovering peers", ids.len() as u64);
    let until =
        Instant::now() + Duration::from_secs(30) + Duration::from_millis(20 * ids.len() as u64);
    fleet
        .await_acks(&ids, until, "the dials discovery gave it")
        .await
}

/// The subscribed peers a node should know: the fleet's subscribers of each topic, and the
/// witnesses that dialled it (subscribed to every topic before they dialled).
pub struct Known<'a> {
    pub subscribers: &'a BTreeMap<String, BTreeSet<u32>>,
    /// Fleet node → how many witnesses dialled it.
    pub witnesses: BTreeMap<u32, usize>,
}

/// Waits until each of `targets` knows every other subscriber of each of `topics` as
/// subscribed, asking for fresh snapshots (`report`) until then; at `until` the nodes that
/// still lack peers are named.
pub async fn wait_topic_peers(
    fleet: &mut Fleet,
    progress: &Progress,
    known_peers: &Known<'_>,
    targets: &[u32],
    topics: &[String],
    until: Instant,
) -> Result<(), Stop> {
    let lacking = |f: &Fleet| -> Vec<(u32, String, u32, usize)> {
        let mut out = Vec::new();
        for &i in targets {
            for t in topics {
                let want = known_peers
                    .subscribers
                    .get(t)
                    .map_or(0, |s| s.len() - usize::from(s.contains(&i)))
                    + known_peers.witnesses.get(&i).copied().unwrap_or(0);
                let known = f
                    .node(i)
                    .and_then(|s| s.last_snapshot())
                    .and_then(|s| s.topics.get(t))
                    .map_or(0, |p| p.subscribed);
                if (known as usize) < want {
                    out.push((i, t.clone(), known, want));
                }
            }
        }
        out
    };
    progress.stage("waiting for every topic peer", targets.len() as u64);
    loop {
        let ids: Vec<u64> = targets
            .iter()
            .filter_map(|&i| fleet.command(i, Command::Report))
            .collect();
        let mut tally = AckTally::new(&ids);
        fleet
            .wait_until(until, |f| f.acked(&mut tally) == ids.len())
            .await?;
        let missing = lacking(fleet);
        progress.set((targets.len() - missing.len().min(targets.len())) as u64);
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= until {
            for (i, t, known, want) in missing {
                fleet.fault(
                    i,
                    crate::record::NodeStatus::Hung,
                    format!("node {i} knows {known} of the {want} other subscribers of topic `{t}` at the deadline"),
                );
            }
            return Err(Stop::Fault);
        }
        // Subscriptions spread in a round trip or two: look again shortly.
        fleet
            .wait_until(
                (Instant::now() + Duration::from_millis(10)).min(until),
                |_| false,
            )
            .await?;
    }
}
