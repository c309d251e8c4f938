//! Checks of a plan's churn phase that serde cannot make, each naming its field
//! (`workload[i].churn.…`). What the runner must be able to do for it is in [`super::runner`].

use super::rules::Problems;
use crate::plan::locate::FieldPath;
use testbed_contract::payload::HEADER_LEN;
use testbed_contract::plan::{ChurnPhase, Phase, Plan};

pub fn check(plan: &Plan, problems: &mut Problems) {
    let workload = FieldPath::default().key("workload");
    let churns: Vec<(usize, &ChurnPhase)> = plan
        .workload
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            Phase::Churn(c) => Some((i, c)),
            _ => None,
        })
        .collect();
    if churns.len() > 1 {
        problems.push((
            workload.clone().index(churns[1].0).key("churn"),
            "a plan may have one churn phase; make the first one longer instead".into(),
        ));
    }
    for &(i, c) in &churns {
        let at = workload.clone().index(i).key("churn");
        let mut p = |field: &str, msg: String| problems.push((at.clone().key(field), msg));
        if c.duration.is_zero() {
            p("duration", "must be longer than 0s".into());
        }
        if c.heartbeat.is_zero() {
            p("heartbeat", "must be longer than 0s".into());
        } else if c.heartbeat > c.duration {
            p(
                "heartbeat",
                "must not be longer than the phase's duration".into(),
            );
        }
        if !(0.0..1.0).contains(&c.drift) {
            p(
                "drift",
                format!("must be at least 0 and below 1, got {}", c.drift),
            );
        }
        if c.delivery_window.is_zero() {
            p(
                "delivery_window",
                "must be longer than 0s (a message needs time to arrive)".into(),
            );
        }
        // Churn topics are named `t0`, `t1` …: allow for a name of 6 characters.
        let max_size = plan
            .groups
            .iter()
            .map(|g| super::rules::max_message_size(g, "t99999"))
            .min()
            .unwrap_or(u32::MAX);
        if (c.message_size as usize) < HEADER_LEN || c.message_size > max_size {
            p(
                "message_size",
                format!(
                    "must be between {HEADER_LEN} (the message header) and {max_size} bytes (what every group's router carries)"
                ),
            );
        }
        let l = &c.limits;
        let limits = at.clone().key("limits");
        if l.min_peers > l.max_peers {
            problems.push((
                limits.clone().key("min_peers"),
                format!("must not exceed max_peers ({})", l.max_peers),
            ));
        }
        if l.max_peers > super::rules::MAX_NODES {
            problems.push((
                limits.clone().key("max_peers"),
                format!("at most {} peers per plan", super::rules::MAX_NODES),
            ));
        }
        for (field, v) in [
            ("max_topics_per_peer", l.max_topics_per_peer),
            ("max_peers_per_topic", l.max_peers_per_topic),
        ] {
            if v == 0 {
                problems.push((limits.clone().key(field), "must be at least 1".into()));
            }
        }
        if c.initial_peers_per_topic > l.max_peers_per_topic {
            problems.push((
                at.clone().key("initial_peers_per_topic"),
                format!(
                    "must not exceed limits.max_peers_per_topic ({})",
                    l.max_peers_per_topic
                ),
            ));
        }
        if let Some(g) = &c.new_peers_group
            && !plan.groups.iter().any(|x| &x.id == g)
        {
            problems.push((
                at.clone().key("new_peers_group"),
                format!(
                    "no group `{g}`; groups are: {}",
                    plan.groups
                        .iter()
                        .map(|g| g.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let slack = c.duration + c.delivery_window;
        if plan.timeout <= slack {
            problems.push((
                FieldPath::default().key("timeout"),
                format!(
                    "the churn phase needs {} (duration + delivery_window) plus startup and collection; raise the timeout above that",
                    humantime::format_duration(slack)
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::load_text;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn problems(workload: &str) -> String {
        let text = format!(
            "version: 1\nname: c\ntimeout: 5m\ngroups:\n  - id: peers\n    count: 3\nworkload:\n{workload}"
        );
        match load_text(Path::new("c.yaml"), &text, &BTreeMap::new()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_and_bad_churn_phases() {
        assert_eq!(problems("  - churn:\n      duration: 1m\n"), "");
        let e = problems(
            "  - churn:\n      duration: 1m\n      new_peers_group: nope\n      limits:\n        min_peers: 40\n",
        );
        assert!(
            e.contains("new_peers_group") && e.contains("no group `nope`"),
            "{e}"
        );
        assert!(e.contains("min_peers"), "{e}");
        let e = problems("  - churn:\n      duration: 10m\n");
        assert!(e.contains("timeout"), "{e}");
        let e = problems("  - churn:\n      duration: 1m\n  - churn:\n      duration: 1m\n");
        assert!(e.contains("one churn phase"), "{e}");
    }
}
