//! What the chosen runner can do for the plan: shaped links need one network namespace per
//! node, churn starts and stops node processes itself. The runner is the plan's `runner:` or
//! `--runner`, and a refusal says which.

use super::rules::Problems;
use crate::plan::locate::FieldPath;
use crate::plan::overrides::{Overrides, RunnerChoice};
use testbed_contract::plan::{Phase, Plan, RunnerKind};

pub fn check(plan: &Plan, overrides: &Overrides, p: &mut Problems) {
    let flag = overrides.runner.is_some();
    let runner = overrides.runner_words(plan);
    if plan.network.is_some() && plan.runner == RunnerKind::Local {
        p.push((
            FieldPath::default().key("network"),
            if flag {
                format!(
                    "network emulation needs `runner: netns` (one network namespace per node); {runner} chooses the local runner, which does not shape links: leave out `--runner` or use `--runner netns`"
                )
            } else {
                "network emulation needs `runner: netns` (one network namespace per node); the `local` runner does not shape links".into()
            },
        ));
    }
    let external = overrides.runner == Some(RunnerChoice::External);
    for (i, phase) in plan.workload.iter().enumerate() {
        if !matches!(phase, Phase::Churn(_)) {
            continue;
        }
        let at = FieldPath::default().key("workload").index(i).key("churn");
        if plan.runner == RunnerKind::K8s {
            p.push((
                at,
                if flag {
                    format!("churn launches and stops node processes itself; {runner} cannot: run it with the `local` or `netns` runner")
                } else {
                    "churn launches and stops node processes itself; run it with the `local` or `netns` runner".into()
                },
            ));
        } else if external {
            p.push((
                at,
                format!("churn launches and stops node processes itself; {runner} starts none: run it with the `local` or `netns` runner"),
            ));
        }
    }
}
