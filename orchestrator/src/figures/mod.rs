//! Where the numbers are computed: pure functions from what a run recorded — the node
//! records ([`crate::record::NodeRecord`]) and the driver's log
//! ([`crate::record::drive_log::DriveLog`]) — to the figures of run.json. Nothing here
//! touches a process, a file or a clock, so every figure can be recomputed from the same
//! inputs and tested with made-up records.
//!
//! - [`summary`]: delivery, latency, duplicates, rates, resources, by group pair, over time;
//! - [`churn`]: deliveries under churn, per delivery window;
//! - [`receive_time`]: deliveries by receive time on the network events' clock;
//! - [`implementations`]: the figures by node implementation;
//! - [`lockstep`]: each lock-step message's time to full delivery;
//! - [`host_load`]: the host's CPU during the measurement window, and whether it was saturated;
//! - [`loop_lag`]: each node's event-loop lag, and the fleet's spread of it;
//! - [`hops`]: hops per first delivery, from each message's delivery tree;
//! - [`witness`]: what each listen-only witness counted against what was published;
//! - [`assertions`]: the plan's assertions against the summary.

pub mod assertions;
pub mod churn;
pub mod hops;
pub mod host_load;
pub mod implementations;
pub mod lockstep;
pub mod loop_lag;
pub mod node_data;
pub mod outside;
pub mod publish_lag;
pub mod receive_time;
pub mod summary;
pub mod unverifiable;
pub mod witness;

use crate::record::drive_log::DriveLog;
use crate::record::sections::{
    ByImplementation, ChurnSection, HopsSection, HostLoadSample, HostLoadSection, LockstepSection,
    LoopLagSection,
};
use crate::record::{GroupPair, NodeRecord, Summary};
use std::collections::BTreeMap;
use testbed_contract::plan::Plan;
use tokio::time::Instant;

/// What the figures of one run are computed from, besides the node records.
pub struct Inputs<'a> {
    pub plan: &'a Plan,
    pub nodes: &'a [NodeRecord],
    pub log: &'a DriveLog,
    /// What each implementation's nodes said they run (`implementation → version`).
    pub versions: &'a BTreeMap<String, String>,
    /// When the run started and finished (RFC 3339, as in the record).
    pub started_at: &'a str,
    pub finished_at: &'a str,
    /// The first launch (time zero of `launch_to_ready_ms`).
    pub t0: Instant,
    /// The wall clock when the whole fleet had been launched: time zero of the timed network
    /// events and of the receive-time view.
    pub events_zero_unix_ns: u64,
    /// The same moment in ms after `t0`: with the above, turns the driver's instants into
    /// the nodes' wall clock.
    pub events_zero_ms: f64,
    /// The host sampler's intervals (ms after `t0`), and the machine's CPU count.
    pub host_samples: &'a [HostLoadSample],
    pub host_sample_period_ms: f64,
    pub cpus: u32,
}

/// Every computed figure of a run.
#[derive(Debug, Clone)]
pub struct Figures {
    pub summary: Summary,
    pub group_pairs: Vec<GroupPair>,
    pub churn: Option<ChurnSection>,
    pub implementations: Option<ByImplementation>,
    pub lockstep: Option<LockstepSection>,
    pub host_load: Option<HostLoadSection>,
    pub loop_lag: Option<LoopLagSection>,
    pub hops: Option<HopsSection>,
}

/// Computes every figure of a run (the orchestrator's own CPU and memory are not figures of
/// the records: the run adds them).
pub fn compute(i: &Inputs) -> Figures {
    let group_names: Vec<String> = i.plan.groups.iter().map(|g| g.id.clone()).collect();
    let (mut s, mut group_pairs) = summary::summarize(i.nodes, &group_names);
    s.unverifiable_deliveries = unverifiable::unverifiable_deliveries(i.plan, i.nodes);
    publish_lag::add_to(&mut s, i.nodes);
    outside::add_to(&mut s, i.nodes);
    // Under churn, a delivery is expected only over a whole delivery window.
    let acc = i
        .log
        .churn
        .as_ref()
        .map(|log| churn::account(i.nodes, log, &group_names));
    let churn = i.log.churn.as_ref().zip(acc.as_ref()).map(|(log, acc)| {
        churn::apply_window_rule(&mut s, &mut group_pairs, acc, &group_names);
        churn::section(i.nodes, log, acc)
    });
    if let Ok(start) = chrono::DateTime::parse_from_rfc3339(i.started_at) {
        let start_ns = start.timestamp_nanos_opt().unwrap_or(0).max(0) as u64;
        s.delivery_over_time = match &acc {
            Some(acc) => summary::bucket_over_time(&acc.by_message, start_ns),
            None => summary::delivery_over_time(i.nodes, start_ns),
        };
    }
    let events = i.plan.network.as_ref().filter(|n| !n.events.is_empty());
    if group_names.len() > 1 || events.is_some() {
        s.received_over_time = receive_time::receive_view(
            i.nodes,
            i.finished_at,
            &group_names,
            events,
            i.events_zero_unix_ns,
        );
    }
    s.launch_to_ready_ms = i
        .log
        .setup_done
        .map(|t| t.duration_since(i.t0).as_secs_f64() * 1e3);
    if let (Some(first), Some(end)) = (i.log.first_publish, i.log.settle_end) {
        let secs = end.duration_since(first).as_secs_f64();
        if secs > 0.0 {
            s.delivery_rate_per_s = Some(s.delivered as f64 / secs);
        }
    }
    let host_load = host_load_of(i);
    s.host_saturated = host_load.as_ref().map(|h| h.host_saturated);
    Figures {
        summary: s,
        group_pairs,
        churn,
        implementations: implementations::of_run(
            i.plan,
            i.nodes,
            i.versions,
            acc.as_ref().map(|a| &a.pairs),
        ),
        lockstep: lockstep::section(i.nodes, i.log),
        host_load,
        loop_lag: loop_lag::section(i.nodes, loop_lag_window(i)),
        hops: hops::section(i.nodes),
    }
}

/// The measurement window on the nodes' wall clock, the host load's: first publish → end of
/// settle or its last counting round (or the end of the run, when it ended before settling);
/// None when nothing was published.
fn loop_lag_window(i: &Inputs) -> Option<loop_lag::Window> {
    let unix = |t: Instant| {
        let after_zero_ms = t.duration_since(i.t0).as_secs_f64() * 1e3 - i.events_zero_ms;
        (i128::from(i.events_zero_unix_ns) + (after_zero_ms * 1e6) as i128).max(0) as u64
    };
    let from_unix_ns = unix(i.log.first_publish?);
    let to_unix_ns = match window_end(i) {
        Some(t) => unix(t),
        None => chrono::DateTime::parse_from_rfc3339(i.finished_at)
            .ok()?
            .timestamp_nanos_opt()?
            .max(0) as u64,
    };
    Some(loop_lag::Window {
        from_unix_ns,
        to_unix_ns,
    })
}

/// The end of the measurement window: the end of settle, or the last settle round that
/// counted a new delivery when that came earlier (a settle waiting out its timeout for a few
/// lost copies is idle time, not the traffic's).
fn window_end(i: &Inputs) -> Option<Instant> {
    match (i.log.settle_end, i.log.last_progress) {
        (Some(e), Some(p)) => Some(e.min(p.max(i.log.first_publish.unwrap_or(p)))),
        (e, _) => e,
    }
}

/// The host's load over the measurement window: first publish → end of settle, or the last
/// settle round that counted a new delivery when that came earlier (a settle waiting out its
/// timeout for a few lost copies is idle time, not the traffic's), or the last sample when
/// the run ended before settling; the whole run when nothing was published.
fn host_load_of(i: &Inputs) -> Option<HostLoadSection> {
    let ms = |t: Instant| t.duration_since(i.t0).as_secs_f64() * 1e3;
    let end = window_end(i);
    let window = i.log.first_publish.map(|first| host_load::Window {
        from_ms: ms(first),
        to_ms: end
            .map(ms)
            .or_else(|| i.host_samples.last().map(|s| s.t_ms))
            .unwrap_or(0.0),
        publish: true,
    });
    host_load::section(
        i.host_samples.to_vec(),
        window,
        i.cpus,
        i.host_sample_period_ms,
    )
}
