//! The `witness:` section's checks: witnesses are extra processes this machine starts and
//! that speak the fleet's protocol, so they need the local runner, one router variant and one
//! security for the whole fleet, a topic to listen to, and no churn (whose added peers take
//! the indices after the fleet's, where the witnesses are).

use super::rules::{MAX_NODES, Problems};
use crate::plan::locate::FieldPath;
use crate::plan::overrides::{Overrides, RunnerChoice};
use testbed_contract::plan::{Implementation, Phase, Plan, RunnerKind};

/// Most witnesses one plan may ask for: each is a whole process that dials the fleet.
pub const MAX_WITNESSES: u32 = 16;

pub fn check(plan: &Plan, overrides: &Overrides, p: &mut Problems) {
    let Some(w) = &plan.witness else { return };
    let at = |field: &str| FieldPath::default().key("witness").key(field);
    if w.count == 0 || w.count > MAX_WITNESSES {
        p.push((
            at("count"),
            format!("must be between 1 and {MAX_WITNESSES}"),
        ));
    }
    if w.peers == 0 {
        p.push((
            at("peers"),
            "must be at least 1 (each witness dials this many fleet nodes)".into(),
        ));
    }
    if w.impl_version.is_some() && w.implementation != Implementation::Go {
        p.push((
            at("impl_version"),
            format!(
                "only the go node's pubsub library version can be chosen, and the witness is `{}`",
                w.implementation.as_str()
            ),
        ));
    }
    if plan.node_count() as u64 + w.count as u64 > MAX_NODES as u64 {
        p.push((
            at("count"),
            format!("the fleet and its witnesses are more than {MAX_NODES} nodes"),
        ));
    }
    let external = overrides.runner == Some(RunnerChoice::External);
    if plan.runner != RunnerKind::Local || external {
        p.push((
            FieldPath::default().key("witness"),
            format!(
                "witnesses run with the local runner (processes on this machine, outside any shaped network); {} cannot start them",
                overrides.runner_words(plan)
            ),
        ));
    }
    if let Some(first) = plan.groups.first() {
        for (i, g) in plan.groups.iter().enumerate().skip(1) {
            if g.variant != first.variant || g.security != first.security {
                p.push((
                    FieldPath::default().key("groups").index(i),
                    format!(
                        "a witness speaks the fleet's protocol, taken from the first group (`{}`: {} with {} security), and group `{}` differs ({} with {} security): give every group the same `variant` and `security`, or remove `witness`",
                        first.id,
                        first.variant.as_str(),
                        first.security.as_str(),
                        g.id,
                        g.variant.as_str(),
                        g.security.as_str()
                    ),
                ));
            }
        }
    }
    let mut subscribes = false;
    for (i, phase) in plan.workload.iter().enumerate() {
        match phase {
            Phase::Subscribe(_) => subscribes = true,
            Phase::Churn(_) => p.push((
                FieldPath::default().key("workload").index(i).key("churn"),
                "a churn phase cannot run with witnesses (the peers it adds take the indices after the fleet's); remove `witness` or the churn phase".into(),
            )),
            _ => {}
        }
    }
    if !subscribes {
        p.push((
            FieldPath::default().key("witness"),
            "a witness listens to the topics the fleet subscribes to, and no phase subscribes to any".into(),
        ));
    }
}

/// Every topic the fleet subscribes to, in the order the plan first names them: what the
/// witnesses subscribe to.
pub fn topics(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for phase in &plan.workload {
        if let Phase::Subscribe(s) = phase {
            for t in &s.topics {
                if !out.contains(t) {
                    out.push(t.clone());
                }
            }
        }
    }
    out
}
