//! Lock-step publishing: `count` messages in total, one at a time, each from a node drawn
//! from the selection with the plan's seed; the next is published only when every
//! subscriber of the topic reported the previous one with a `delivered` event. A message
//! that does not reach everyone within `message_timeout` stops the run, naming the nodes
//! that lack it and the lifecycle state each was in.

use crate::fleet::{Fleet, Stop};
use crate::progress::Progress;
use crate::record::NodeStatus;
use crate::record::drive_log::{LockstepLog, SentMessage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use testbed_contract::plan::PublishPhase;
use testbed_contract::protocol::Command;
use tokio::time::Instant;

/// How long one message may take to reach every subscriber when the plan does not say.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a lock-step phase works with.
pub struct Context<'a> {
    pub fleet: &'a mut Fleet,
    pub progress: &'a Progress,
    /// The topic's subscribers, as the driver acknowledged them.
    pub subscribers: &'a BTreeSet<u32>,
    /// Each node's next sequence number (publishes acknowledged so far).
    pub next_seq: &'a mut BTreeMap<u32, u64>,
    /// The plan's seed, mixed with the phase index: which node publishes each message.
    pub seed: u64,
}

/// Runs the phase; `log` keeps every message sent, also when the run stops early.
pub async fn run(
    cx: Context<'_>,
    p: &PublishPhase,
    candidates: &[u32],
    log: &mut LockstepLog,
) -> Result<(), Stop> {
    let Context {
        fleet,
        progress,
        subscribers,
        next_seq,
        seed,
    } = cx;
    log.topic = p.topic.clone();
    log.planned = p.count;
    if candidates.is_empty() {
        fleet.anomalies.push(format!(
            "lock-step publish phase {}: no live node to publish from",
            log.phase
        ));
        return Err(Stop::Fault);
    }
    let timeout = p.message_timeout.unwrap_or(DEFAULT_MESSAGE_TIMEOUT);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6c6f_636b_7374_6570 ^ log.phase as u64);
    progress.stage("publishing in lock-step", u64::from(p.count));
    for k in 0..p.count {
        let origin = candidates[rng.random_range(0..candidates.len())];
        let cmd = Command::Publish {
            topic: p.topic.clone(),
            count: 1,
            rate: None,
            size: p.size,
            peer_timeout_ms: timeout.as_millis() as u64,
        };
        let Some(id) = fleet.command(origin, cmd) else {
            return Err(Stop::Fault);
        };
        let seq = *next_seq.entry(origin).or_default();
        let receivers: Vec<u32> = subscribers
            .iter()
            .copied()
            .filter(|&r| r != origin)
            .collect();
        let until = Instant::now() + timeout;
        let done = fleet
            .wait_until(until, |f| {
                f.ack(id).is_some()
                    && receivers
                        .iter()
                        .all(|r| f.deliveries_of(origin, seq).iter().any(|(d, _)| d == r))
            })
            .await;
        log.messages.push(SentMessage {
            origin,
            seq,
            receivers: receivers.clone(),
            delivered: fleet.deliveries_of(origin, seq).to_vec(),
        });
        if fleet.ack(id).is_some_and(|a| a.ok) {
            *next_seq.entry(origin).or_default() += 1;
        }
        match done {
            Ok(true) => {
                log.complete += 1;
                log.last_read = Some(Instant::now());
                progress.set(u64::from(k) + 1)
            }
            Ok(false) => {
                name_the_stuck(fleet, id, origin, seq, &receivers, timeout);
                return Err(Stop::Fault);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Marks hung the publisher that never acknowledged, or every receiver the message did not
/// reach, each with the state it was in.
fn name_the_stuck(
    fleet: &mut Fleet,
    id: u64,
    origin: u32,
    seq: u64,
    receivers: &[u32],
    timeout: Duration,
) {
    let state = |f: &Fleet, i: u32| f.node(i).map_or("unknown", |s| s.state().as_str());
    let t = humantime::format_duration(timeout);
    if fleet.ack(id).is_none() {
        let reason = format!(
            "node {origin} did not publish its lock-step message {seq} within {t} (state: {})",
            state(fleet, origin)
        );
        fleet.fault(origin, NodeStatus::Hung, reason);
        return;
    }
    let got: Vec<u32> = fleet
        .deliveries_of(origin, seq)
        .iter()
        .map(|(d, _)| *d)
        .collect();
    for &r in receivers.iter().filter(|r| !got.contains(r)) {
        let reason = format!(
            "node {r} did not receive lock-step message {seq} of node {origin} within {t} (state: {}); {} of {} subscribers did",
            state(fleet, r),
            got.len(),
            receivers.len()
        );
        fleet.fault(r, NodeStatus::Hung, reason);
    }
}
