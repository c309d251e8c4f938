//! Runs the workload on a live fleet: handshake, connect, then each plan phase as a barrier
//! (the next phase starts when every selected node acknowledged the previous one). A churn
//! phase is handed to [`crate::churn::executor`]. What the driver learns along the way goes
//! to the [`DriveLog`], the input of the figures.

mod discover;
mod lockstep;
mod witness;

use crate::churn::discovery::MockDiscovery;
use crate::churn::launcher::Launcher;
use crate::clock_sync;
use crate::fleet::{AckTally, Fleet, Stop};
use crate::progress::Progress;
use crate::record::PhaseRecord;
use crate::record::drive_log::{DriveLog, LockstepLog};
use crate::spec::{RunSpec, RunnerSel};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use testbed_contract::plan::{Phase, PublishMode, PublishPhase, SubscribePhase};
use testbed_contract::protocol::Command;
use testbed_contract::selector::NodeSelector;
use tokio::time::Instant;

/// How long a publish phase may take: publishing at a rate takes count/rate; allow twice
/// that plus slack for a loaded machine. Total: never panics, whatever the numbers.
pub fn publish_allowance(count: u32, rate: Option<f64>) -> Duration {
    let nominal = rate.map_or(0.0, |r| f64::from(count) / r);
    Duration::try_from_secs_f64(nominal * 2.0 + 30.0 + f64::from(count) * 0.01)
        .unwrap_or(Duration::MAX)
}

/// How long the handshake waits for `nodes` nodes to connect and report their listen address
/// (the Kubernetes launcher orders its own pod diagnosis before this).
pub fn handshake_wait(nodes: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(50 * nodes as u64)
}

pub struct Driver<'a, 'r> {
    spec: &'a RunSpec,
    fleet: &'a mut Fleet,
    progress: &'a Progress,
    /// The first launch: phases are timed from here.
    started: Instant,
    log: DriveLog,
    subscribers: BTreeMap<String, BTreeSet<u32>>,
    settle_note: Option<String>,
    /// Launches and stops the peers of the plan's churn phase, when it has one.
    launcher: Option<Launcher<'r>>,
    /// Each node's next message sequence number (its publishes acknowledged so far).
    next_seq: BTreeMap<u32, u64>,
    /// The mock discovery service of `subscribe` phases with `discover`.
    discovery: MockDiscovery,
}

impl<'a, 'r> Driver<'a, 'r> {
    pub fn new(
        spec: &'a RunSpec,
        fleet: &'a mut Fleet,
        progress: &'a Progress,
        started: Instant,
        launcher: Option<Launcher<'r>>,
    ) -> Self {
        Driver {
            spec,
            fleet,
            progress,
            started,
            log: DriveLog::default(),
            subscribers: BTreeMap::new(),
            settle_note: None,
            launcher,
            next_seq: BTreeMap::new(),
            discovery: MockDiscovery::default(),
        }
    }

    /// Runs the whole workload: every node up, the topology dialled, every phase. The log is
    /// returned also when the run stopped early.
    pub async fn run(mut self) -> (DriveLog, Result<(), Stop>) {
        let r = async {
            self.handshake().await?;
            let setting = self.spec.plan.telemetry.clock_correction;
            let same_clock = self.spec.runner != RunnerSel::External;
            let clock = clock_sync::at_start(self.fleet, setting, same_clock).await?;
            self.log.clock = Some(clock);
            self.connect().await?;
            if !self.spec.witnesses.is_empty() {
                let start = Instant::now();
                let r = witness::join(self.spec, self.fleet, self.progress).await;
                self.record_phase(usize::MAX, "witness join", start, r.is_ok(), None);
                r?;
            }
            self.run_phases().await?;
            if !self.spec.witnesses.is_empty() {
                let start = Instant::now();
                let r = witness::catch_up(self.spec, self.fleet, self.progress).await;
                self.record_phase(usize::MAX, "witness count", start, r.is_ok(), None);
                r?;
            }
            match &mut self.log.clock {
                Some(c) => clock_sync::at_end(self.fleet, c).await,
                None => Ok(()),
            }
        }
        .await;
        (self.log, r)
    }

    fn ms_since_start(&self, t: Instant) -> f64 {
        t.duration_since(self.started).as_secs_f64() * 1e3
    }

    /// Waits until every node said hello and listens.
    async fn handshake(&mut self) -> Result<(), Stop> {
        let n = self.fleet.len();
        self.fleet.activity = "startup (waiting for every node to connect and listen)".into();
        let until = crate::fleet::after(handshake_wait(n));
        self.progress.stage("starting nodes", n as u64);
        let progress = self.progress;
        let ok = self
            .fleet
            .wait_until(until, |f| {
                let up = f.nodes().iter().filter(|s| s.listening()).count();
                progress.set(up as u64);
                up == n
            })
            .await?;
        if !ok {
            for i in 0..n {
                let s = &self.fleet.nodes()[i];
                if !s.listening() {
                    let what = if s.hello() {
                        "report its listen address"
                    } else {
                        "connect to the control channel"
                    };
                    self.fleet.fault(
                        i as u32,
                        crate::record::NodeStatus::Hung,
                        format!("node {i} did not {what} in time"),
                    );
                }
            }
            return Err(Stop::Fault);
        }
        Ok(())
    }

    /// Dials the topology.
    async fn connect(&mut self) -> Result<(), Stop> {
        let start = Instant::now();
        self.fleet.activity = "connect".into();
        let n = self.fleet.len() as u32;
        let mut ids = Vec::new();
        // Every node gets a connect, even with nothing to dial (node 0, the witnesses, which
        // dial once subscribed): it is how a node learns that setup reached the connected state.
        for i in 0..n {
            let targets = self.spec.dials.get(i as usize).map_or(&[][..], |d| d);
            let peers = targets
                .iter()
                .filter_map(|&t| self.fleet.node(t)?.peer_addr())
                .collect();
            if let Some(id) = self.fleet.command(i, Command::Connect { peers }) {
                ids.push(id);
            }
        }
        self.progress.stage("connecting", ids.len() as u64);
        let until = Instant::now() + Duration::from_secs(30) + Duration::from_millis(20 * n as u64);
        let r = self
            .await_acks_with_progress(&ids, until, "its dials")
            .await;
        self.record_phase(usize::MAX, "connect", start, r.is_ok(), None);
        self.log.setup_done = Some(Instant::now());
        r
    }

    async fn await_acks_with_progress(
        &mut self,
        ids: &[u64],
        until: Instant,
        what: &str,
    ) -> Result<(), Stop> {
        let progress = self.progress;
        let mut tally = AckTally::new(ids);
        // Progress counts acks as they arrive; the wait itself marks hung nodes at `until`.
        let counted = self
            .fleet
            .wait_until(until, |f| {
                let done = f.acked(&mut tally);
                progress.set(done as u64);
                done == ids.len()
            })
            .await;
        match counted {
            Ok(true) => Ok(()),
            _ => self.fleet.await_acks(ids, until, what).await,
        }
    }

    async fn run_phases(&mut self) -> Result<(), Stop> {
        let spec: &'a RunSpec = self.spec;
        let plan = &spec.plan;
        self.log.workload_start = Some(Instant::now());
        let first_publish = plan
            .workload
            .iter()
            .position(|p| matches!(p, Phase::Publish(_)));
        for (i, phase) in plan.workload.iter().enumerate() {
            let start = Instant::now();
            self.fleet.activity = format!("workload phase {i} ({})", phase.kind());
            let r = match phase {
                Phase::Subscribe(s) => self.subscribe(s, true).await,
                Phase::Unsubscribe(s) => self.subscribe(s, false).await,
                Phase::Publish(p) if p.mode == PublishMode::Lockstep => {
                    self.publish_lockstep(i, p).await
                }
                Phase::Publish(p) => self.publish(p).await,
                Phase::Wait(d) => self.wait(*d).await,
                Phase::Settle(s) => self.settle(s.timeout).await.map(|_| ()),
                Phase::Churn(_) => self.churn().await,
            };
            let note = match phase {
                Phase::Settle(_) if r.is_ok() => self.settle_note.take(),
                Phase::Churn(_) => self.settle_note.take(),
                _ => None,
            };
            self.record_phase(i, phase.kind(), start, r.is_ok(), note);
            r?;
            if matches!(phase, Phase::Subscribe(_)) && first_publish.is_none_or(|f| i < f) {
                self.log.setup_done = Some(Instant::now());
            }
        }
        Ok(())
    }

    fn record_phase(
        &mut self,
        index: usize,
        kind: &str,
        start: Instant,
        ok: bool,
        note: Option<String>,
    ) {
        let rec = PhaseRecord {
            index,
            kind: kind.to_string(),
            started_ms: self.ms_since_start(start),
            duration_ms: start.elapsed().as_secs_f64() * 1e3,
            ok,
            note,
        };
        self.progress.phase_done(&rec);
        self.log.phases.push(rec);
    }

    /// The live fleet members a phase's selection names (never a witness).
    fn selected(&self, nodes: &NodeSelector, groups: &[String]) -> Vec<u32> {
        self.fleet
            .members()
            .filter(|s| {
                nodes.contains(s.index())
                    && (groups.is_empty() || groups.iter().any(|g| g == s.group()))
            })
            .map(|s| s.index())
            .collect()
    }

    async fn subscribe(&mut self, s: &SubscribePhase, join: bool) -> Result<(), Stop> {
        let targets = self.selected(&s.nodes, &s.groups);
        if join && s.discover {
            let (fleet, service) = (&mut *self.fleet, &mut self.discovery);
            discover::dial_registered(fleet, self.progress, service, &targets, &s.topics).await?;
        }
        let mut ids = Vec::new();
        for &i in &targets {
            let cmd = if join {
                Command::Subscribe {
                    topics: s.topics.clone(),
                    wait_mesh: s.wait_mesh,
                    mesh_timeout_ms: s.mesh_timeout.as_millis() as u64,
                }
            } else {
                Command::Unsubscribe {
                    topics: s.topics.clone(),
                }
            };
            if let Some(id) = self.fleet.command(i, cmd) {
                ids.push((i, id));
            }
        }
        self.progress.stage(
            if join { "subscribing" } else { "unsubscribing" },
            ids.len() as u64,
        );
        let until = crate::fleet::after(s.mesh_timeout.saturating_add(Duration::from_secs(10)));
        let just_ids: Vec<u64> = ids.iter().map(|x| x.1).collect();
        self.await_acks_with_progress(&just_ids, until, "its subscription")
            .await?;
        for (i, id) in ids {
            for t in &s.topics {
                let set = self.subscribers.entry(t.clone()).or_default();
                if join {
                    set.insert(i);
                } else {
                    set.remove(&i);
                }
            }
            if join
                && s.wait_mesh
                && let Some(info) = self.fleet.ack(id).map(|a| &a.info)
            {
                // Protocol 2 says whether the node meshed (and gives `mesh_ms` only then);
                // protocol 1 gives a `mesh_ms` either way.
                let ms = info.get("mesh_ms").and_then(|v| v.as_f64());
                let meshed = info.get("meshed").and_then(|v| v.as_bool());
                self.fleet.note_mesh(i, ms, meshed);
            }
        }
        if join && s.wait_topic_peers {
            let until = Instant::now() + s.mesh_timeout;
            let (fleet, subs) = (&mut *self.fleet, &self.subscribers);
            let known = discover::Known {
                subscribers: subs,
                witnesses: witness::links(self.spec),
            };
            discover::wait_topic_peers(fleet, self.progress, &known, &targets, &s.topics, until)
                .await?;
        }
        Ok(())
    }

    /// A lock-step publish phase (see [`lockstep`]); its messages go to the drive log also
    /// when the run stops in it.
    async fn publish_lockstep(&mut self, phase: usize, p: &PublishPhase) -> Result<(), Stop> {
        let candidates = self.selected(&p.nodes, &p.groups);
        self.log.first_publish.get_or_insert_with(Instant::now);
        let empty = BTreeSet::new();
        let cx = lockstep::Context {
            fleet: &mut *self.fleet,
            progress: self.progress,
            subscribers: self.subscribers.get(&p.topic).unwrap_or(&empty),
            next_seq: &mut self.next_seq,
            seed: self.spec.plan.seed,
        };
        let mut log = LockstepLog {
            phase,
            ..LockstepLog::default()
        };
        let r = lockstep::run(cx, p, &candidates, &mut log).await;
        self.log.expected_estimate += log
            .messages
            .iter()
            .map(|m| m.receivers.len() as u64)
            .sum::<u64>();
        self.log.lockstep.push(log);
        r
    }

    async fn publish(&mut self, p: &PublishPhase) -> Result<(), Stop> {
        let targets = self.selected(&p.nodes, &p.groups);
        self.log.first_publish.get_or_insert_with(Instant::now);
        let mut ids = Vec::new();
        let mut by_node = Vec::new();
        for &i in &targets {
            let cmd = Command::Publish {
                topic: p.topic.clone(),
                count: p.count,
                rate: p.rate,
                size: p.size,
                peer_timeout_ms: 10_000,
            };
            if let Some(id) = self.fleet.command(i, cmd) {
                ids.push(id);
                by_node.push((i, id));
                let subs = self.subscribers.get(&p.topic);
                let receivers = subs.map_or(0, |s| s.len() - usize::from(s.contains(&i)));
                self.log.expected_estimate += p.count as u64 * receivers as u64;
            }
        }
        self.progress.stage("publishing", ids.len() as u64);
        let mut until = crate::fleet::after(publish_allowance(p.count, p.rate));
        // A node that is slow but still publishing (JS peers of a big mixed fleet on a few
        // cores take minutes) is not hung: past the deadline, wait on while the snapshots of
        // the publishers show more messages published than at the last look.
        let published = |f: &Fleet| -> u64 {
            targets
                .iter()
                .filter_map(|&i| f.node(i)?.last_snapshot())
                .map(|s| s.published)
                .sum()
        };
        let mut last = published(self.fleet);
        loop {
            let progress = self.progress;
            let mut tally = AckTally::new(&ids);
            let done = match self
                .fleet
                .wait_until(until, |f| {
                    let n = f.acked(&mut tally);
                    progress.set(n as u64);
                    n == ids.len()
                })
                .await
            {
                Ok(done) => done,
                // The plan's deadline: below, the unfinished publishers are named.
                Err(Stop::Timeout) => break,
                Err(e) => return Err(e),
            };
            let now = published(self.fleet);
            if done || now <= last {
                break;
            }
            last = now;
            until = Instant::now() + Duration::from_secs(15);
        }
        let r = self
            .await_acks_with_progress(&ids, until, "publishing")
            .await;
        self.count_published(&by_node);
        r
    }

    /// Advances each publisher's sequence number by what its publish ack says it published.
    fn count_published(&mut self, by_node: &[(u32, u64)]) {
        for &(i, id) in by_node {
            let n = self
                .fleet
                .ack(id)
                .and_then(|a| a.info.get("published"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            *self.next_seq.entry(i).or_default() += n;
        }
    }

    /// Runs the churn phase (crate::churn); its record goes to `log.churn` also when it
    /// stopped early.
    async fn churn(&mut self) -> Result<(), Stop> {
        let (Some(mut launcher), Some(prepared)) = (self.launcher.take(), &self.spec.churn) else {
            // Plan validation refuses churn without a runner that launches nodes.
            self.fleet
                .anomalies
                .push("the churn phase cannot run: the run was started without a runner that launches nodes".into());
            return Err(Stop::Fault);
        };
        let cx = crate::churn::executor::Context {
            fleet: &mut *self.fleet,
            launcher: &mut launcher,
            progress: self.progress,
            subscribers: self.subscribers.clone(),
        };
        let (log, r) = crate::churn::executor::run(cx, &prepared.config, &prepared.schedule).await;
        self.settle_note = Some(log.phase_note());
        self.log.churn = Some(log);
        r
    }

    async fn wait(&mut self, d: Duration) -> Result<(), Stop> {
        self.progress
            .stage(&format!("waiting {}", humantime::format_duration(d)), 0);
        self.fleet
            .wait_until(crate::fleet::after(d), |_| false)
            .await
            .map(|_| ())
    }

    /// Polls fresh snapshots until the deliveries counted reach the expected estimate.
    async fn settle(&mut self, timeout: Duration) -> Result<bool, Stop> {
        let expected = self.log.expected_estimate;
        let until = crate::fleet::after(timeout);
        self.progress.stage("settling (deliveries)", expected);
        let mut counted = 0u64;
        loop {
            let live: Vec<u32> = self.fleet.members().map(|s| s.index()).collect();
            let ids: Vec<u64> = live
                .iter()
                .filter_map(|&i| self.fleet.command(i, Command::Report))
                .collect();
            let round_end = (Instant::now() + Duration::from_secs(5)).min(until);
            let mut tally = AckTally::new(&ids);
            let answered = self
                .fleet
                .wait_until(round_end, |f| f.acked(&mut tally) == ids.len())
                .await?;
            let received: u64 = self
                .fleet
                .members()
                .filter_map(|s| s.last_snapshot())
                .map(|s| s.received)
                .sum();
            self.progress.set(received.min(expected));
            if received > counted {
                counted = received;
                self.log.last_progress = Some(Instant::now());
            }
            if answered && received >= expected {
                self.log.settle_end = Some(Instant::now());
                self.settle_note = Some(format!("all {expected} expected deliveries counted"));
                return Ok(true);
            }
            if Instant::now() >= until {
                self.log.settle_end = Some(Instant::now());
                self.settle_note = Some(format!(
                    "timeout: {received} of {expected} expected deliveries counted"
                ));
                return Ok(false);
            }
            // Each round asks every node for a snapshot: at 1000 nodes rounds 100 ms apart
            // kept the orchestrator and the fleet busy answering them for the whole settle.
            let gap = Duration::from_millis(live.len() as u64)
                .clamp(Duration::from_millis(100), Duration::from_secs(1));
            let _ = self
                .fleet
                .wait_until((Instant::now() + gap).min(until), |_| false)
                .await?;
        }
    }
}
