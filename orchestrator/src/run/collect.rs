//! Steps 4 and 5 of a run, where every ending is handled. However the drive ended — the
//! workload done, a node failed, the plan's timeout, Ctrl-C, a failed launch — every live
//! node is asked for its result (`finish`, or `abort` when the run failed), every process is
//! reaped, and the ending becomes the run's status and reasons ([`outcome`]); the plan's
//! assertions can only turn a pass into a failure ([`with_assertions`]).

use super::launch::Live;
use crate::figures::node_data::{self, PublishBound};
use crate::fleet::{Fleet, Stop};
use crate::record::{AssertionOutcome, FinishInfo, NodeStatus, Outcome, Sections, Status};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use testbed_contract::protocol::{Command, OrchMsg};
use tokio::time::Instant;

/// What collecting brought in besides the slots themselves.
pub struct Collected {
    /// The `finish` acks' counters, per node.
    pub finish_info: BTreeMap<u32, FinishInfo>,
    /// The sections the runner adds once every process is gone (the shaper's counters).
    pub runner_sections: Sections,
    /// What the run was doing when the drive ended ("workload phase 2 (settle)"), for the
    /// reason of a signal or a timeout.
    pub ended_during: String,
}

/// Asks for the results, waits for them, reaps every process and stops the control server.
pub async fn collect(live: &mut Live, drive: &Result<(), Stop>) -> Collected {
    let fleet = &mut live.fleet;
    let ended_during = std::mem::replace(&mut fleet.activity, "collection of results".into());
    fleet.finishing = true;
    let alive: Vec<u32> = fleet.alive().map(|s| s.index()).collect();
    let mut finish_ids: BTreeMap<u32, u64> = BTreeMap::new();
    // Who is asked for a result: on success the live nodes; on failure also nodes already
    // marked hung (and still connected), whose partial result is worth having: a node that
    // missed one command's deadline usually still answers an abort.
    let asked: Vec<u32> = match drive {
        Ok(()) => {
            live.progress
                .stage("collecting results", alive.len() as u64);
            for &i in &alive {
                if let Some(id) = fleet.command(i, Command::Finish) {
                    finish_ids.insert(i, id);
                }
            }
            alive.clone()
        }
        Err(stop) => abort_reachable(fleet, stop, &live.progress),
    };
    // Bounded, and independent of how the drive ended: an interrupt or a passed deadline
    // does not shorten it (a second Ctrl-C exits the process, see `signals.rs`).
    let asked_at = Instant::now();
    let until = asked_at + collect_bound(asked.len());
    let _ = fleet
        .wait_until(until, |f| {
            asked.iter().filter_map(|&i| f.node(i)).all(|s| {
                // An exit alone is not the end: the result may still be on its way through the
                // control channel, which closes after the last line was read.
                s.result().is_some()
                    || s.fault().is_some()
                    || (s.exit().is_some() && !s.channel_open())
            })
        })
        .await;
    // Whoever was asked and sent nothing within the bound is named, on every ending.
    let missing: Vec<(u32, Option<String>)> = asked
        .iter()
        .filter_map(|&i| {
            let s = fleet.node(i)?;
            s.result()
                .is_none()
                .then(|| (i, s.exit().map(|e| e.to_string())))
        })
        .collect();
    let waited = until.saturating_duration_since(asked_at).as_secs();
    for (i, exit) in missing {
        let (status, why) = match exit {
            Some(e) => (
                NodeStatus::Crashed,
                format!("node {i} {e} without sending its final result"),
            ),
            None => (
                NodeStatus::Hung,
                format!("node {i} did not send its final result within {waited} s of being asked"),
            ),
        };
        fleet.fault(i, status, why);
    }
    // What the nodes reported is checked before any figure trusts it.
    let checks = {
        let results: Vec<(u32, &testbed_contract::results::NodeResult)> = fleet
            .nodes()
            .iter()
            .filter_map(|s| Some((s.index(), s.result()?)))
            .collect();
        node_data::anomalies(&results, &publish_bounds(fleet), fleet.len() as u32)
    };
    for (i, why) in checks {
        fleet.fault(i, NodeStatus::Failed, why);
    }
    if drive.is_ok() {
        fleet.finishing = false;
    }
    live.runner.shutdown(Duration::from_secs(3)).await;
    let mut runner_sections = Sections::default();
    live.runner.add_sections(&mut runner_sections);
    // Drain exit events now that every process is reaped.
    let _ = live
        .fleet
        .wait_until(Instant::now() + Duration::from_millis(50), |_| false)
        .await;
    live.progress.finish();
    // Finish acks' info: counters the result has no field for.
    let finish_info = finish_ids
        .iter()
        .filter_map(|(&i, &id)| Some((i, FinishInfo::from_ack(&live.fleet.ack(id)?.info)?)))
        .collect();
    Collected {
        finish_info,
        runner_sections,
        ended_during,
    }
}

/// What each node was asked to publish, and what its acks counted of it.
fn publish_bounds(fleet: &Fleet) -> HashMap<u32, PublishBound> {
    fleet
        .nodes()
        .iter()
        .map(|s| {
            let commands = s.publish_commands().iter().map(|&(id, count)| {
                let acked = fleet
                    .ack(id)
                    .and_then(|a| a.info.get("published")?.as_u64());
                (count, acked)
            });
            (s.index(), PublishBound::from_commands(commands))
        })
        .collect()
}

/// How long results are waited for once asked: 20 s, and 20 ms more per node asked.
pub fn collect_bound(asked: usize) -> Duration {
    Duration::from_secs(20) + Duration::from_millis(20u64.saturating_mul(asked as u64))
}

/// After a failed drive: sends `abort` to every node that can still answer; returns them.
fn abort_reachable(
    fleet: &mut Fleet,
    stop: &Stop,
    progress: &crate::progress::Progress,
) -> Vec<u32> {
    let reason = match stop {
        Stop::Interrupted => "the run was interrupted",
        Stop::Timeout => "the plan's timeout was reached",
        Stop::Fault => "another node failed",
    };
    let reachable: Vec<u32> = fleet
        .nodes()
        .iter()
        .filter(|s| {
            s.channel_open()
                && s.exit().is_none()
                && !s.removed()
                && s.result().is_none()
                && s.fault().is_none_or(|(st, _)| *st == NodeStatus::Hung)
        })
        .map(|s| s.index())
        .collect();
    progress.stage(
        "aborting: collecting partial results",
        reachable.len() as u64,
    );
    for &i in &reachable {
        fleet.send(
            i,
            OrchMsg::Abort {
                reason: reason.into(),
            },
        );
    }
    reachable
}

/// The run's status and reasons from how it ended: a failed launch is an error, a stop is
/// what stopped it (with what the run was doing, `during`), and every node fault and protocol
/// anomaly is a reason (and fails a run that would otherwise pass).
pub fn outcome(
    launch_error: Option<&str>,
    drive: &Result<(), Stop>,
    fleet: &Fleet,
    timeout: Duration,
    during: &str,
) -> Outcome {
    let (status, mut reasons) = match (launch_error, drive) {
        (Some(e), _) => (Status::Error, vec![e.to_string()]),
        (None, Ok(())) if fleet.has_faults() => (Status::NodeFailed, vec![]),
        (None, Ok(())) => (Status::Passed, vec![]),
        (None, Err(Stop::Interrupted)) => (
            Status::Interrupted,
            vec![format!("interrupted by signal during {during}")],
        ),
        (None, Err(Stop::Timeout)) => (
            Status::Timeout,
            vec![format!(
                "the plan's timeout ({}) was reached during {during}",
                humantime::format_duration(timeout),
            )],
        ),
        (None, Err(Stop::Fault)) => (Status::NodeFailed, vec![]),
    };
    reasons.extend(
        fleet
            .nodes()
            .iter()
            .filter_map(|s| Some(s.fault()?.1.clone())),
    );
    reasons.extend(fleet.anomalies.iter().cloned());
    // Protocol problems nobody can be blamed for still fail the run.
    let status = if status == Status::Passed && !fleet.anomalies.is_empty() {
        Status::NodeFailed
    } else {
        status
    };
    Outcome { status, reasons }
}

/// A passed run whose assertions do not all hold failed; each failed assertion is a reason.
pub fn with_assertions(outcome: &mut Outcome, assertions: &[AssertionOutcome]) {
    if outcome.status != Status::Passed || assertions.iter().all(|a| a.passed) {
        return;
    }
    outcome.status = Status::AssertionFailed;
    for a in assertions.iter().filter(|a| !a.passed) {
        outcome.reasons.push(format!(
            "assertion `{}` failed: actual {}",
            a.assertion,
            a.actual.map_or("unavailable".into(), |v| format!("{v}"))
        ));
    }
}
