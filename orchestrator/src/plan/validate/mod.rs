//! Semantic checks that serde cannot make: references between sections, ranges, and
//! combinations that could never produce a meaningful run. Each problem names its field.
//! The one place a plan is checked (the contract checks its `network:` section itself, and
//! the Kubernetes renderer what it cannot render): groups, topology and workload here, the
//! churn phase in [`churn`], telemetry in [`telemetry`], and what the chosen runner can do
//! in [`runner`], mixed connection security in [`security`], the witnesses in [`witness`] — after the command line's overrides were applied.

mod bounds;
mod churn;
mod rules;
mod runner;
mod security;
mod telemetry;
pub mod witness;

pub use bounds::MAX_DURATION;
use rules::Problems;
pub use rules::{MAX_NODES, max_message_size};

use super::locate::FieldPath;
use super::overrides::Overrides;
use std::collections::{BTreeSet, HashSet};
use testbed_contract::payload::HEADER_LEN;
use testbed_contract::plan::{
    GossipsubParams, Phase, Plan, PublishMode, PublishPhase, TopologyKind, Variant,
};
use testbed_contract::selector::NodeSelector;

/// Every problem of `plan` as run with `overrides` (already applied to it).
pub fn validate(plan: &Plan, overrides: &Overrides) -> Problems {
    let mut p = Problems::new();
    let root = FieldPath::default;
    if plan.version != testbed_contract::PLAN_SCHEMA_VERSION {
        p.push((
            root().key("version"),
            format!(
                "schema version {} is not supported; this orchestrator reads version 1",
                plan.version
            ),
        ));
    }
    if !is_path_name(&plan.name) {
        p.push((
            root().key("name"),
            format!("`{}` is not a usable name: use letters, digits, `-`, `_` or `.`, starting with a letter or digit, at most 100 characters (it names the results folder)", plan.name),
        ));
    }
    if plan.timeout.is_zero() {
        p.push((root().key("timeout"), "must be longer than 0s".into()));
    }
    bounds::check(plan, &mut p);
    check_groups(plan, &mut p);
    check_topology(plan, &mut p);
    security::check(plan, &mut p);
    check_workload(plan, &mut p);
    check_matrix(plan, &mut p);
    churn::check(plan, &mut p);
    check_network(plan, &mut p);
    telemetry::check(&plan.telemetry, &mut p);
    runner::check(plan, overrides, &mut p);
    witness::check(plan, overrides, &mut p);
    p
}

fn check_network(plan: &Plan, p: &mut Problems) {
    let Some(network) = &plan.network else { return };
    let groups: Vec<&str> = plan.groups.iter().map(|g| g.id.as_str()).collect();
    for issue in network.validate(&groups, plan.timeout) {
        p.push((FieldPath::parse(&issue.path), issue.message));
    }
}

fn check_groups(plan: &Plan, p: &mut Problems) {
    let groups = FieldPath::default().key("groups");
    if plan.groups.is_empty() {
        p.push((
            groups.clone(),
            "a plan needs at least one group of nodes".into(),
        ));
    }
    let mut seen = HashSet::new();
    for (i, g) in plan.groups.iter().enumerate() {
        let at = groups.clone().index(i);
        if !is_dns_label(&g.id) {
            p.push((
                at.clone().key("id"),
                format!("`{}` is not a valid group id: use lowercase letters, digits and `-`, starting with a letter (at most 40 characters)", g.id),
            ));
        }
        if !seen.insert(g.id.as_str()) {
            p.push((
                at.clone().key("id"),
                format!("group id `{}` is used twice", g.id),
            ));
        }
        if g.count == 0 {
            p.push((at.clone().key("count"), "must be at least 1".into()));
        }
        if g.variant == Variant::Gossipsub {
            check_gossipsub(&g.gossipsub, at.clone().key("gossipsub"), p);
        }
    }
    let total: u64 = plan.groups.iter().map(|g| g.count as u64).sum();
    if total > MAX_NODES as u64 {
        p.push((
            groups,
            format!("{total} nodes in all; at most {MAX_NODES} per plan"),
        ));
    }
}

fn check_gossipsub(g: &GossipsubParams, at: FieldPath, p: &mut Problems) {
    if !(g.mesh_n_low <= g.mesh_n && g.mesh_n <= g.mesh_n_high) {
        p.push((
            at.clone().key("mesh_n"),
            format!(
                "needs mesh_n_low <= mesh_n <= mesh_n_high, got {} <= {} <= {}",
                g.mesh_n_low, g.mesh_n, g.mesh_n_high
            ),
        ));
    }
    if g.mesh_outbound_min > g.mesh_n_low || g.mesh_outbound_min * 2 > g.mesh_n {
        p.push((
            at.clone().key("mesh_outbound_min"),
            format!(
                "must be at most mesh_n_low ({}) and at most half of mesh_n ({})",
                g.mesh_n_low, g.mesh_n
            ),
        ));
    }
    if g.history_gossip > g.history_length {
        p.push((
            at.clone().key("history_gossip"),
            format!("must not exceed history_length ({})", g.history_length),
        ));
    }
    if g.heartbeat.is_zero() {
        p.push((at.clone().key("heartbeat"), "must be longer than 0s".into()));
    }
    if !(0.0..=1.0).contains(&g.gossip_factor) {
        p.push((
            at.clone().key("gossip_factor"),
            "must be between 0 and 1".into(),
        ));
    }
    let least = HEADER_LEN as u32 + 8192 + 512;
    if g.max_transmit_size < least {
        p.push((at.key("max_transmit_size"), format!("must be at least {least} bytes (a message header plus gossipsub's 8.25 KiB read headroom)")));
    }
}

fn check_topology(plan: &Plan, p: &mut Problems) {
    let at = FieldPath::default().key("topology");
    let n = plan.node_count();
    match plan.topology.kind {
        TopologyKind::Random if plan.topology.degree == 0 => p.push((
            at.key("degree"),
            "must be at least 1 (each node dials `degree` peers)".into(),
        )),
        TopologyKind::Bootstrap
            if plan.topology.bootstrap_nodes == 0 || plan.topology.bootstrap_nodes > n.max(1) =>
        {
            p.push((
                at.key("bootstrap_nodes"),
                format!("must be between 1 and the number of nodes ({n})"),
            ))
        }
        _ => {}
    }
}

fn check_workload(plan: &Plan, p: &mut Problems) {
    let workload = FieldPath::default().key("workload");
    if plan.workload.is_empty() {
        p.push((
            workload.clone(),
            "the workload is empty: add at least one phase".into(),
        ));
    }
    let n = plan.node_count();
    let group_ids: BTreeSet<&str> = plan.groups.iter().map(|g| g.id.as_str()).collect();
    let mut subscribed: BTreeSet<&str> = BTreeSet::new();
    // The largest message every group's router accepts on this topic (see `max_message_size`).
    let max_size = |topic: &str| {
        plan.groups
            .iter()
            .map(|g| max_message_size(g, topic))
            .min()
            .unwrap_or(u32::MAX)
    };
    for (i, phase) in plan.workload.iter().enumerate() {
        let at = workload.clone().index(i).key(phase.kind());
        let churn_before = plan.workload[..i]
            .iter()
            .any(|ph| matches!(ph, Phase::Churn(_)));
        let mut check_sel = |sel: &NodeSelector, groups: &[String], at: &FieldPath| {
            if let Some(max) = sel.max_named().filter(|m| *m >= n) {
                p.push((
                    at.clone().key("nodes"),
                    format!(
                        "names node {max}, but the plan has {n} nodes (indices 0..{})",
                        n.saturating_sub(1)
                    ),
                ));
            }
            for (gi, g) in groups.iter().enumerate() {
                if !group_ids.contains(g.as_str()) {
                    p.push((
                        at.clone().key("groups").index(gi),
                        format!(
                            "no group `{g}`; groups are: {}",
                            group_ids.iter().copied().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        };
        match phase {
            Phase::Subscribe(s) | Phase::Unsubscribe(s) => {
                check_sel(&s.nodes, &s.groups, &at);
                if s.topics.is_empty() || s.topics.iter().any(|t| t.is_empty()) {
                    p.push((
                        at.clone().key("topics"),
                        "name at least one topic, none empty".into(),
                    ));
                }
                if matches!(phase, Phase::Subscribe(_)) {
                    subscribed.extend(s.topics.iter().map(String::as_str));
                } else {
                    for (field, set) in [
                        ("discover", s.discover),
                        ("wait_topic_peers", s.wait_topic_peers),
                    ] {
                        if set {
                            p.push((
                                at.clone().key(field),
                                "only a `subscribe` phase finds or waits for peers".into(),
                            ));
                        }
                    }
                }
            }
            Phase::Publish(pb) => {
                check_sel(&pb.nodes, &pb.groups, &at);
                if pb.count == 0 {
                    p.push((at.clone().key("count"), "must be at least 1".into()));
                }
                let max_size = max_size(&pb.topic);
                if (pb.size as usize) < HEADER_LEN || pb.size > max_size {
                    p.push((
                        at.clone().key("size"),
                        format!(
                            "must be between {HEADER_LEN} (the message header) and {max_size} bytes (what every group's router accepts on this topic: floodsub frames are capped at 2048 bytes, gossipsub needs 8.25 KiB of headroom below max_transmit_size)"
                        ),
                    ));
                }
                if let Some(rate) = pb.rate
                    && !(rate > 0.0 && rate.is_finite())
                {
                    p.push((
                        at.clone().key("rate"),
                        "must be a positive number of messages per second".into(),
                    ));
                }
                check_lockstep(pb, &at, churn_before, p);
                if !subscribed.contains(pb.topic.as_str()) {
                    p.push((
                        at.clone().key("topic"),
                        format!(
                            "no earlier phase subscribes to topic `{}`, so nothing could be delivered; add a `subscribe` phase before it",
                            pb.topic
                        ),
                    ));
                }
            }
            Phase::Wait(d) if d.is_zero() => p.push((
                workload.clone().index(i).key("wait"),
                "must be longer than 0s".into(),
            )),
            Phase::Settle(s) if s.timeout.is_zero() => {
                p.push((at.clone().key("timeout"), "must be longer than 0s".into()))
            }
            _ => {}
        }
    }
}

/// Lock-step publishing: one message at a time, so no rate; its sequence numbers are counted
/// from the publish acks, which a churn phase's own publishing would put out of step.
fn check_lockstep(pb: &PublishPhase, at: &FieldPath, churn_before: bool, p: &mut Problems) {
    if pb.mode != PublishMode::Lockstep {
        if pb.message_timeout.is_some() {
            p.push((
                at.clone().key("message_timeout"),
                "only a `mode: lockstep` publish phase has a per-message timeout".into(),
            ));
        }
        return;
    }
    if pb.rate.is_some() {
        p.push((
            at.clone().key("rate"),
            "a lock-step phase publishes one message at a time, each when the previous reached every subscriber: remove `rate`".into(),
        ));
    }
    if pb.message_timeout.is_some_and(|d| d.is_zero()) {
        p.push((
            at.clone().key("message_timeout"),
            "must be longer than 0s".into(),
        ));
    }
    if churn_before {
        p.push((
            at.clone().key("mode"),
            "a lock-step phase cannot follow a churn phase (the churn's publishing makes its message numbers unknown)".into(),
        ));
    }
}

fn check_matrix(plan: &Plan, p: &mut Problems) {
    let Some(m) = &plan.matrix else { return };
    let at = FieldPath::default().key("matrix");
    if m.iterations == 0 {
        p.push((at.clone().key("iterations"), "must be at least 1".into()));
    }
    if m.params.is_empty() {
        p.push((
            at.clone().key("params"),
            "list at least one parameter to sweep".into(),
        ));
    }
    for (name, values) in &m.params {
        if !plan.params.contains_key(name) {
            p.push((
                at.clone().key("params").key(name),
                format!("`{name}` is not declared under `params:`; the plan must use it as `${{{name}}}`"),
            ));
        }
        if values.is_empty() {
            p.push((
                at.clone().key("params").key(name),
                "give at least one value".into(),
            ));
        }
    }
    for (field, named) in [("compare", &m.compare), ("x", &m.x)] {
        if let Some(name) = named.as_deref().filter(|n| !m.params.contains_key(*n)) {
            p.push((
                at.clone().key(field),
                format!(
                    "`{name}` is not swept; name one of the parameters under `matrix.params`: {}",
                    m.params.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    if let (Some(c), Some(x)) = (&m.compare, &m.x)
        && c == x
    {
        p.push((
            at.key("x"),
            "the x axis and `compare` must be different parameters".into(),
        ));
    }
}

pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A name that is one folder under `results/`: letters, digits, `-`, `_`, `.`, starting
/// with a letter or digit (so never `.` or `..`), at most 100 characters.
pub fn is_path_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
