//! Upper and lower bounds on every number of a plan: what the code can represent and what a
//! machine can run. A value inside them cannot overflow the run's arithmetic (every
//! `Instant + Duration` stays far below the clock's limit) nor ask for absurd memory or a
//! busy loop (heartbeat and interval floors).

use super::rules::{MAX_NODES, Problems};
use crate::plan::locate::FieldPath;
use std::time::Duration;
use testbed_contract::plan::{Phase, Plan};

/// The longest any duration of a plan may be: a week. Sums of a handful of these stay far
/// inside what `Instant` can represent.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The shortest heartbeat (gossipsub, churn): below it a node or the executor only spins.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// The shortest snapshot interval: a snapshot is a control message from every node.
pub const MIN_SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);
/// Publish rates per node: slower than one message in 1000 s is a typo, faster than a
/// million a second no node sustains.
pub const RATE_RANGE: (f64, f64) = (1e-3, 1e6);
/// Most messages one node may be told to publish in one phase.
pub const MAX_PUBLISH_COUNT: u32 = 10_000_000;
/// Largest gossipsub `max_transmit_size`: every peer's read buffer is this large.
pub const MAX_TRANSMIT_SIZE: u32 = 16 << 20;
/// Most heartbeats of one churn phase (the schedule is computed whole before the run).
pub const MAX_TICKS: u32 = 1_000_000;
/// Most events of one kind per churn heartbeat.
pub const MAX_PER_HEARTBEAT: u32 = 10_000;

pub fn check(plan: &Plan, p: &mut Problems) {
    let root = FieldPath::default;
    let mut dur = |at: FieldPath, d: Duration| {
        if d > MAX_DURATION {
            p.push((
                at,
                format!(
                    "{} is longer than the longest a plan may ask for ({})",
                    humantime::format_duration(d),
                    humantime::format_duration(MAX_DURATION)
                ),
            ));
        }
    };
    dur(root().key("timeout"), plan.timeout);
    let t = root().key("telemetry");
    dur(
        t.clone().key("metrics_linger"),
        plan.telemetry.metrics_linger,
    );
    dur(
        t.clone().key("snapshot_interval"),
        plan.telemetry.snapshot_interval,
    );
    for (i, g) in plan.groups.iter().enumerate() {
        let at = root().key("groups").index(i).key("gossipsub");
        let gs = &g.gossipsub;
        dur(at.clone().key("heartbeat"), gs.heartbeat);
        dur(
            at.clone().key("heartbeat_initial_delay"),
            gs.heartbeat_initial_delay,
        );
        dur(at.clone().key("fanout_ttl"), gs.fanout_ttl);
    }
    for (i, phase) in plan.workload.iter().enumerate() {
        let at = root().key("workload").index(i);
        match phase {
            Phase::Wait(d) => dur(at.key("wait"), *d),
            Phase::Settle(s) => dur(at.key("settle").key("timeout"), s.timeout),
            Phase::Subscribe(s) | Phase::Unsubscribe(s) => {
                dur(at.key(phase.kind()).key("mesh_timeout"), s.mesh_timeout)
            }
            Phase::Churn(c) => {
                let at = at.key("churn");
                dur(at.clone().key("duration"), c.duration);
                dur(at.clone().key("heartbeat"), c.heartbeat);
                dur(at.clone().key("delivery_window"), c.delivery_window);
                dur(
                    at.clone().key("publish_peer_timeout"),
                    c.publish_peer_timeout,
                );
                dur(at.clone().key("live_every"), c.live_every);
                dur(at.key("peak").key("duration"), c.peak.duration);
            }
            Phase::Publish(_) => {}
        }
    }
    floors_and_sizes(plan, p);
}

/// Floors (heartbeats, intervals), rates, counts and sizes.
fn floors_and_sizes(plan: &Plan, p: &mut Problems) {
    let root = FieldPath::default;
    let ms = |d: Duration| humantime::format_duration(d).to_string();
    let si = plan.telemetry.snapshot_interval;
    if !si.is_zero() && si < MIN_SNAPSHOT_INTERVAL {
        p.push((
            root().key("telemetry").key("snapshot_interval"),
            format!("must be 0 (off) or at least {}", ms(MIN_SNAPSHOT_INTERVAL)),
        ));
    }
    for (i, g) in plan.groups.iter().enumerate() {
        let at = root().key("groups").index(i).key("gossipsub");
        if !g.gossipsub.heartbeat.is_zero() && g.gossipsub.heartbeat < MIN_HEARTBEAT {
            p.push((
                at.clone().key("heartbeat"),
                format!("must be at least {}", ms(MIN_HEARTBEAT)),
            ));
        }
        if g.gossipsub.max_transmit_size > MAX_TRANSMIT_SIZE {
            p.push((
                at.key("max_transmit_size"),
                format!("must be at most {MAX_TRANSMIT_SIZE} bytes (16 MiB): every peer reserves a read buffer this large"),
            ));
        }
    }
    for (i, phase) in plan.workload.iter().enumerate() {
        let at = root().key("workload").index(i);
        match phase {
            Phase::Publish(pb) => {
                let at = at.key("publish");
                if let Some(r) = pb.rate
                    && r.is_finite()
                    && r > 0.0
                    && !(RATE_RANGE.0..=RATE_RANGE.1).contains(&r)
                {
                    p.push((
                        at.clone().key("rate"),
                        format!(
                            "must be between {} and {} messages per second",
                            RATE_RANGE.0, RATE_RANGE.1
                        ),
                    ));
                }
                if pb.count > MAX_PUBLISH_COUNT {
                    p.push((
                        at.key("count"),
                        format!("must be at most {MAX_PUBLISH_COUNT} per node"),
                    ));
                }
            }
            Phase::Churn(c) => {
                let at = at.key("churn");
                if !c.heartbeat.is_zero() && c.heartbeat < MIN_HEARTBEAT {
                    p.push((
                        at.clone().key("heartbeat"),
                        format!("must be at least {}", ms(MIN_HEARTBEAT)),
                    ));
                }
                if !c.heartbeat.is_zero()
                    && c.duration.as_nanos() / c.heartbeat.as_nanos() > u128::from(MAX_TICKS)
                {
                    p.push((
                        at.clone().key("heartbeat"),
                        format!("gives more than {MAX_TICKS} heartbeats over the phase's duration; make it longer"),
                    ));
                }
                if !c.live_every.is_zero() && c.live_every < c.heartbeat {
                    p.push((
                        at.clone().key("live_every"),
                        "must be 0 (off) or at least the heartbeat".into(),
                    ));
                }
                let f = &c.frequencies;
                for (name, v) in [
                    ("add_peer", f.add_peer),
                    ("remove_peer", f.remove_peer),
                    ("add_topic", f.add_topic),
                    ("remove_topic", f.remove_topic),
                    ("join_random_topic", f.join_random_topic),
                    ("join_friends_topic", f.join_friends_topic),
                    ("leave_random_topic", f.leave_random_topic),
                ] {
                    if v > MAX_PER_HEARTBEAT {
                        p.push((
                            at.clone().key("frequencies").key(name),
                            format!("must be at most {MAX_PER_HEARTBEAT}"),
                        ));
                    }
                }
                let l = &c.limits;
                for (name, v) in [
                    ("max_peers", l.max_peers),
                    ("max_topics", l.max_topics),
                    ("max_topics_per_peer", l.max_topics_per_peer),
                    ("max_peers_per_topic", l.max_peers_per_topic),
                    ("max_friends_per_peer", l.max_friends_per_peer),
                ] {
                    if v > MAX_NODES {
                        p.push((
                            at.clone().key("limits").key(name),
                            format!("must be at most {MAX_NODES}"),
                        ));
                    }
                }
                for (name, v) in [
                    ("initial_topics", c.initial_topics),
                    ("initial_peers_per_topic", c.initial_peers_per_topic),
                    ("discovery_peers", c.discovery_peers),
                ] {
                    if v > MAX_NODES {
                        p.push((at.clone().key(name), format!("must be at most {MAX_NODES}")));
                    }
                }
                if c.peak.peers > MAX_NODES {
                    p.push((
                        at.key("peak").key("peers"),
                        format!("must be at most {MAX_NODES}"),
                    ));
                }
            }
            _ => {}
        }
    }
}
