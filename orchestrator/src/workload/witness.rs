//! The witnesses' part of a run (the plan's `witness:`): after the fleet's own dials each
//! witness subscribes to every topic the fleet will use and only then dials its fleet peers,
//! so the subscription reaches them with the connection and is known before anything is
//! published; after the workload they get a short, bounded time to count the last messages.
//! No phase selects a witness and no fleet figure counts one.

use crate::fleet::{Fleet, Stop};
use crate::progress::Progress;
use crate::spec::RunSpec;
use std::collections::BTreeMap;
use std::time::Duration;
use testbed_contract::protocol::Command;
use tokio::time::Instant;

/// How long the witnesses may take, after the workload, to count what the fleet published.
pub const CATCH_UP: Duration = Duration::from_secs(10);

/// Subscribes every witness to the fleet's topics, then has it dial its fleet peers.
pub async fn join(spec: &RunSpec, fleet: &mut Fleet, progress: &Progress) -> Result<(), Stop> {
    progress.stage("witnesses joining", spec.witnesses.len() as u64);
    let mut ids = Vec::new();
    for w in &spec.witnesses {
        let cmd = Command::Subscribe {
            topics: spec.witness_topics.clone(),
            wait_mesh: false,
            mesh_timeout_ms: 0,
        };
        ids.extend(fleet.command(w.index, cmd));
    }
    let until = Instant::now() + Duration::from_secs(30);
    fleet.await_acks(&ids, until, "its subscription").await?;
    let mut ids = Vec::new();
    for (w, targets) in spec.witnesses.iter().zip(&spec.witness_dials) {
        let peers = targets
            .iter()
            .filter_map(|&t| fleet.node(t)?.peer_addr())
            .collect();
        ids.extend(fleet.command(w.index, Command::Connect { peers }));
    }
    let until = Instant::now() + Duration::from_secs(30);
    fleet.await_acks(&ids, until, "its dials").await
}

/// How many witnesses dial each fleet node: the subscribed peers a node knows beyond the
/// fleet's own (a readiness wait on topic peers counts them).
pub fn links(spec: &RunSpec) -> BTreeMap<u32, usize> {
    let mut out = BTreeMap::new();
    for &t in spec.witness_dials.iter().flatten() {
        *out.entry(t).or_default() += 1;
    }
    out
}

/// Waits, at most [`CATCH_UP`], until every live witness counted as many messages as the
/// fleet's members say they published (fresh snapshots of both). Whatever the witnesses
/// have then is what they report: a shortfall shows in the report's verdict.
pub async fn catch_up(spec: &RunSpec, fleet: &mut Fleet, progress: &Progress) -> Result<(), Stop> {
    let until = Instant::now() + CATCH_UP;
    progress.stage("witnesses counting", spec.witnesses.len() as u64);
    loop {
        let live: Vec<u32> = fleet.alive().map(|s| s.index()).collect();
        let ids: Vec<u64> = live
            .iter()
            .filter_map(|&i| fleet.command(i, Command::Report))
            .collect();
        let answered = fleet
            .wait_until(until, |f| ids.iter().all(|id| f.ack(*id).is_some()))
            .await?;
        let published: u64 = fleet
            .members()
            .filter_map(|s| s.last_snapshot())
            .map(|s| s.published)
            .sum();
        let behind = fleet
            .alive()
            .filter(|s| fleet.is_witness(s.index()))
            .filter(|s| s.last_snapshot().is_none_or(|x| x.received < published))
            .count();
        progress.set((spec.witnesses.len() - behind.min(spec.witnesses.len())) as u64);
        if (answered && behind == 0) || Instant::now() >= until {
            return Ok(());
        }
        fleet
            .wait_until(
                (Instant::now() + Duration::from_millis(100)).min(until),
                |_| false,
            )
            .await?;
    }
}
