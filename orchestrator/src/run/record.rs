//! Steps 6 and 7 of a run: the record (`run.json`) from the spec, the fleet's slots, the
//! drive log and how the run ended — with the figures ([`crate::figures`]) — and the files:
//! `events.jsonl`, `run.json`, the reports.

use super::collect::{self, Collected};
use super::launch::Live;
use crate::figures::{self, Inputs};
use crate::fleet::Stop;
use crate::record::churn_log;
use crate::record::drive_log::DriveLog;
use crate::record::sections::{NetworkLink, NetworkSection};
use crate::record::store::{RunDir, node_log};
use crate::record::{NodeRecord, RECORD_SCHEMA, RunRecord, Versions};
use crate::spec::RunSpec;
use anyhow::Context;
use testbed_contract::plan::{Network, Plan};

/// The run record, complete but for the telemetry's sections.
pub fn build(
    spec: &RunSpec,
    live: &mut Live,
    log: &DriveLog,
    drive: &Result<(), Stop>,
    collected: Collected,
) -> RunRecord {
    let finished_at = chrono::Utc::now();
    let mut outcome = collect::outcome(
        live.launch_error.as_deref(),
        drive,
        &live.fleet,
        spec.plan.timeout,
        &collected.ended_during,
    );
    let versions = Versions {
        testbed: env!("CARGO_PKG_VERSION").to_string(),
        node_implementations: live
            .fleet
            .nodes()
            .iter()
            .filter_map(|s| {
                Some((
                    s.implementation().to_string(),
                    s.impl_version()?.to_string(),
                ))
            })
            .collect(),
    };
    let mut finish_info = collected.finish_info;
    // Every process is reaped: the sampler has seen all it could.
    let mut sampled = live.sampler.take().map(|s| s.stop());
    // The witnesses' records go to their own section: no fleet figure counts them.
    let (witnesses, nodes): (Vec<NodeRecord>, Vec<NodeRecord>) = live
        .fleet
        .take_nodes()
        .into_iter()
        .map(|s| {
            let i = s.index();
            let mut n = s.into_record(node_log(i), finish_info.remove(&i));
            n.outside = sampled.as_mut().and_then(|x| x.nodes.remove(&i));
            n
        })
        .partition(|n| spec.is_witness(n.index));
    let (started, finished) = (spec.started_at.to_rfc3339(), finished_at.to_rfc3339());
    let host = crate::host::facts();
    let host_samples = live.host_load.take().map(|h| h.stop()).unwrap_or_default();
    let f = figures::compute(&Inputs {
        plan: &spec.plan,
        nodes: &nodes,
        log,
        versions: &versions.node_implementations,
        started_at: &started,
        finished_at: &finished,
        t0: live.t0,
        events_zero_unix_ns: live.events_zero_unix_ns,
        events_zero_ms: live.events_zero_ms,
        host_samples: &host_samples,
        host_sample_period_ms: crate::host_load::SAMPLE_PERIOD.as_secs_f64() * 1e3,
        cpus: host.cpus,
    });
    let mut summary = f.summary;
    summary.orchestrator_cpu_s = (crate::host::self_usage().0 - live.cpu_at_launch_s).max(0.0);
    summary.orchestrator_peak_rss_bytes = crate::host::peak_rss_since_reset().unwrap_or(0);
    if let Some(x) = &sampled {
        summary.sampler_cpu_s = Some(x.own_cpu_s);
        summary.fleet_pss_peak_bytes = Some(x.fleet_pss_peak_bytes).filter(|b| *b > 0);
        summary.fleet_pss_last_bytes = Some(x.fleet_pss_last_bytes).filter(|b| *b > 0);
    }
    let assertions = figures::assertions::check(&spec.plan, &summary);
    collect::with_assertions(&mut outcome, &assertions);
    let mut sections = collected.runner_sections;
    sections.churn = f.churn;
    sections.clock = log.clock.clone();
    sections.implementations = f.implementations;
    sections.lockstep = f.lockstep;
    sections.host_load = f.host_load;
    sections.loop_lag = f.loop_lag;
    sections.hops = f.hops;
    sections.witness = figures::witness::section(&nodes, witnesses, &spec.witness_dials);
    sections.network = spec
        .plan
        .network
        .as_ref()
        .map(|n| network_section(&spec.plan, n, live.events_zero_ms));
    RunRecord {
        schema: RECORD_SCHEMA,
        run_id: spec.run_id.clone(),
        plan_name: spec.plan.name.clone(),
        plan_file: spec.plan_file.display().to_string(),
        command: spec.command.clone(),
        started_at: started,
        finished_at: finished,
        duration_s: (finished_at - spec.started_at).num_milliseconds() as f64 / 1e3,
        runner: live.runner.name().to_string(),
        params: spec.plan.params.clone(),
        versions,
        host,
        outcome,
        summary,
        assertions,
        phases: log.phases.clone(),
        group_pairs: f.group_pairs,
        nodes,
        sections,
    }
}

/// The network as configured, beside the numbers: every group pair's resolved profile, the
/// timed events, and when their clock started (ms after the first launch).
fn network_section(plan: &Plan, network: &Network, events_zero_ms: f64) -> NetworkSection {
    let groups: Vec<&str> = plan.groups.iter().map(|g| g.id.as_str()).collect();
    let links = groups
        .iter()
        .flat_map(|f| groups.iter().map(move |t| (*f, *t)))
        .map(|(from, to)| NetworkLink {
            from: from.into(),
            to: to.into(),
            profile: network.link_params(from, to),
        })
        .collect();
    NetworkSection {
        section: network.clone(),
        links,
        events_zero_ms,
    }
}

/// Writes `events.jsonl` (churn), `run.json` and the reports, each regardless of whether
/// the ones before it could be written; returns the errors of those that could not.
pub fn write(dir: &RunDir, record: &RunRecord, log: &DriveLog) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(c) = &log.churn {
        let r = churn_log::write_jsonl(&dir.path.join("events.jsonl"), &c.events)
            .with_context(|| format!("writing {}/events.jsonl", dir.path.display()));
        errors.extend(r.err().map(|e| format!("{e:#}")));
    }
    errors.extend(dir.write_record(record).err().map(|e| format!("{e:#}")));
    errors.extend(
        crate::report::write_all(&dir.path, record)
            .err()
            .map(|e| format!("{e:#}")),
    );
    errors
}
