//! Connection security across groups: peers of different security (noise, plaintext) cannot
//! complete a libp2p handshake, so a plan whose dial plan or discovery would connect them is
//! refused before anything starts, naming the group and one pair of nodes.

use super::rules::Problems;
use crate::plan::locate::FieldPath;
use crate::topology::dial_plan;
use std::collections::BTreeMap;
use testbed_contract::plan::{Phase, Plan, Security};

pub fn check(plan: &Plan, p: &mut Problems) {
    if plan
        .groups
        .iter()
        .all(|g| g.security == plan.groups[0].security)
    {
        return;
    }
    // Node index → group number, in plan order as the fleet is launched.
    let group_of: Vec<usize> = plan
        .groups
        .iter()
        .enumerate()
        .flat_map(|(gi, g)| std::iter::repeat_n(gi, g.count as usize))
        .collect();
    let sec = |node: u32| plan.groups[group_of[node as usize]].security;
    let dials = dial_plan(&plan.topology, group_of.len() as u32, plan.seed);
    let mut reported = std::collections::BTreeSet::new();
    for (i, targets) in dials.iter().enumerate() {
        for &t in targets {
            let (a, b) = (group_of[i], group_of[t as usize]);
            if sec(i as u32) != sec(t) && reported.insert((a.min(b), a.max(b))) {
                p.push((
                    FieldPath::default()
                        .key("groups")
                        .index(explicit(plan, a, b))
                        .key("security"),
                    mixed(
                        plan,
                        a,
                        b,
                        &format!("the topology has node {i} dial node {t}"),
                    ),
                ));
            }
        }
    }
    check_discovery(plan, &group_of, p);
}

/// Subscribe phases with `discover` connect every registered subscriber of a topic.
fn check_discovery(plan: &Plan, group_of: &[usize], p: &mut Problems) {
    let mut first: BTreeMap<&str, (usize, u32)> = BTreeMap::new();
    for (pi, phase) in plan.workload.iter().enumerate() {
        let Phase::Subscribe(s) = phase else { continue };
        if !s.discover {
            continue;
        }
        for (node, &gi) in group_of.iter().enumerate() {
            let g = &plan.groups[gi];
            if !s.nodes.contains(node as u32) || !(s.groups.is_empty() || s.groups.contains(&g.id))
            {
                continue;
            }
            for t in &s.topics {
                let (og, on) = *first.entry(t.as_str()).or_insert((gi, node as u32));
                if plan.groups[og].security != g.security {
                    p.push((
                        FieldPath::default()
                            .key("workload")
                            .index(pi)
                            .key("subscribe")
                            .key("discover"),
                        mixed(
                            plan,
                            gi,
                            og,
                            &format!("discovery on topic `{t}` has node {node} dial node {on}"),
                        ),
                    ));
                    return;
                }
            }
        }
    }
}

/// Of two groups, the one whose `security` differs from the default: the one that names it.
fn explicit(plan: &Plan, a: usize, b: usize) -> usize {
    if plan.groups[a].security != Security::default() {
        a
    } else {
        b
    }
}

fn mixed(plan: &Plan, a: usize, b: usize, how: &str) -> String {
    let name = |s: Security| s.as_str();
    let (ga, gb) = (&plan.groups[a], &plan.groups[b]);
    format!(
        "group `{}` uses {} security and group `{}` {}, but {how}: peers of different security cannot connect (the handshake fails); give the groups the same `security`, or keep them apart",
        ga.id,
        name(ga.security),
        gb.id,
        name(gb.security)
    )
}
