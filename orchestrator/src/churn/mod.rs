//! The churn simulator (docs/simulator.md): a workload phase in which peers, topics and
//! friendships come and go on real node processes, as in the reference simulator.
//!
//! Follow it in order: [`schedule`] computes the whole event sequence from the plan and seed
//! before anything starts (a pure function); [`executor`] applies it to the live fleet at each
//! heartbeat — launching and stopping processes through the [`launcher`], dialling the peers
//! the [`discovery`] service names, subscribing and publishing — and keeps the orchestrator's
//! own record of what each node did; [`live`] prints the one-line view; [`event_log`] is what
//! is saved as `events.jsonl`; [`accounting`] counts deliveries per delivery window into the
//! `churn` section of run.json, which the reports render.

pub mod accounting;
pub mod discovery;
pub mod event_log;
pub mod executor;
pub mod launcher;
pub mod live;
pub mod report;
pub mod schedule;
pub mod validate;

pub use live::{LiveBoard, LiveFigures, board};

use event_log::EventRecord;
use schedule::{InitialFleet, Schedule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use testbed_contract::plan::{ChurnPhase, Phase, Plan, RemoveMode};
use testbed_contract::results::Subscription;

/// The churn phase of a plan, with its schedule computed (at most one per plan).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Position of the phase in `workload`.
    pub phase: usize,
    pub config: ChurnPhase,
    pub schedule: Schedule,
}

impl Prepared {
    /// Group index (plan order) of every node index the run may have, initial and added:
    /// nodes keep latencies per origin group, so they must know the new peers' group too.
    pub fn origin_groups(&self, plan: &Plan) -> Vec<u16> {
        let mut groups = plan.group_of_index();
        let new = plan
            .groups
            .iter()
            .position(|g| g.id == self.schedule.new_group)
            .unwrap_or(0) as u16;
        groups.resize(self.schedule.end_index as usize, new);
        groups
    }
}

/// The churn phase of `plan` and its schedule, if it has one.
pub fn prepare(plan: &Plan) -> Option<Prepared> {
    let (phase, config) = plan
        .workload
        .iter()
        .enumerate()
        .find_map(|(i, p)| match p {
            Phase::Churn(c) => Some((i, c.clone())),
            _ => None,
        })?;
    let new_group = config
        .new_peers_group
        .clone()
        .or_else(|| plan.groups.first().map(|g| g.id.clone()))
        .unwrap_or_default();
    let group_of = plan.group_of_index();
    let fleet = InitialFleet {
        peers: group_of
            .iter()
            .enumerate()
            .map(|(i, g)| (i as u32, plan.groups[*g as usize].id.clone()))
            .collect(),
    };
    let schedule = schedule::generate(&config, &fleet, &new_group, plan.seed);
    Some(Prepared {
        phase,
        config,
        schedule,
    })
}

/// What the driver needs to run the churn phase.
pub struct Setup<'r> {
    pub launcher: launcher::Launcher<'r>,
    pub prepared: Prepared,
}

/// The phase's line in the phases table.
pub fn phase_note(log: &ChurnLog) -> String {
    use event_log::Outcome;
    let n = |o: Outcome| log.events.iter().filter(|e| e.outcome == o).count();
    let mut note = format!(
        "{} events: {} ok, {} partial, {} failed, {} skipped",
        log.events.len(),
        n(Outcome::Ok),
        n(Outcome::Partial),
        n(Outcome::Failed),
        n(Outcome::Skipped)
    );
    for (o, what) in [
        (Outcome::Unfinished, "unfinished"),
        (Outcome::NotRun, "not run"),
    ] {
        if n(o) > 0 {
            note.push_str(&format!(", {} {what}", n(o)));
        }
    }
    note.push_str(&format!(
        "; {} peers added, {} removed",
        log.added.len(),
        log.removals.len()
    ));
    note
}

/// A node stopped on purpose, by the orchestrator's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub at_ns: u64,
    pub mode: RemoveMode,
}

/// A publish command as the orchestrator saw it: sent, acknowledged, how many messages the
/// node reported published. Stands in for the node's own record when the node has none
/// (killed): its `k`-th published message has sequence number `base_seq + k`, published
/// between `sent_ns` and `acked_ns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrchPublish {
    pub topic: String,
    pub sent_ns: u64,
    pub acked_ns: u64,
    pub published: u32,
}

/// The simulation's state at one heartbeat, for the report's charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    pub peers: u32,
    pub topics: u32,
    pub connections: u32,
    pub friendships: u32,
    /// Topic memberships (peer–topic pairs).
    pub memberships: u32,
}

/// Everything the churn phase recorded, for accounting and the results folder.
#[derive(Debug, Clone, Default)]
pub struct ChurnLog {
    pub config: ChurnPhase,
    /// Wall clock (ns since the Unix epoch) when the phase started and ended.
    pub started_ns: u64,
    pub ended_ns: u64,
    pub events: Vec<EventRecord>,
    pub samples: Vec<Sample>,
    pub removals: BTreeMap<u32, Removal>,
    /// The orchestrator's record of each node's subscriptions (conservative: a span opens
    /// when the subscribe was acknowledged and closes when the unsubscribe was sent or the
    /// node removed), used for nodes that left no result.
    pub spans: BTreeMap<u32, Vec<Subscription>>,
    pub publishes: BTreeMap<u32, Vec<OrchPublish>>,
    /// Messages each node had published when the phase started (sequence numbers go on).
    pub base_seq: BTreeMap<u32, u64>,
    /// Peers launched by the phase.
    pub added: Vec<u32>,
    pub last_live: Option<LiveFigures>,
}
