//! Deliveries nobody can check: messages published (by nodes whose results arrived) on a
//! topic the plan subscribed a receiver to, when that receiver's own result is missing (it
//! crashed or hung before sending it). They are neither delivered nor missed as far as the
//! record can tell, so they stand beside the delivery ratio as their own figure instead of
//! silently leaving its denominator.

use crate::record::{NodeRecord, NodeStatus};
use std::collections::BTreeSet;
use testbed_contract::plan::{Phase, Plan};

/// The topics the plan's `subscribe` phases name for node `index` of `group` (a later
/// `unsubscribe` does not remove them: the node may have received before it).
fn plan_topics<'p>(plan: &'p Plan, index: u32, group: &str) -> BTreeSet<&'p str> {
    plan.workload
        .iter()
        .filter_map(|p| match p {
            Phase::Subscribe(s) => Some(s),
            _ => None,
        })
        .filter(|s| {
            s.nodes.contains(index) && (s.groups.is_empty() || s.groups.iter().any(|g| g == group))
        })
        .flat_map(|s| s.topics.iter().map(String::as_str))
        .collect()
}

/// The number of (message, receiver) pairs whose delivery cannot be verified (see the
/// module's comment). Removed nodes (churn) left on purpose and are not counted.
pub fn unverifiable_deliveries(plan: &Plan, nodes: &[NodeRecord]) -> u64 {
    let lost: Vec<(u32, BTreeSet<&str>)> = nodes
        .iter()
        .filter(|n| n.result.is_none() && n.status != NodeStatus::Removed)
        .map(|n| (n.index, plan_topics(plan, n.index, &n.group)))
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let mut count = 0u64;
    for (receiver, topics) in &lost {
        for n in nodes.iter().filter(|n| n.index != *receiver) {
            let Some(r) = &n.result else { continue };
            let hits = r
                .published
                .iter()
                .filter(|p| topics.contains(p.topic.as_str()))
                .count() as u64;
            count = count.saturating_add(hits);
        }
    }
    count
}
