//! Applies a churn schedule to the live fleet. At each heartbeat the due events are applied:
//! a new peer is a process launched through the runner, a removed peer is stopped (SIGTERM or
//! SIGKILL) after being marked removed, joins become `connect` (to the peers the discovery
//! service names) and `subscribe`, leaves `unsubscribe`, messages `publish`.
//!
//! Commands go to each node one at a time, in event order (the next after the previous one's
//! ack), and wait until the node listens; their failures are outcomes in the event log, not
//! node faults. A node crash, the plan's deadline or Ctrl-C still end the phase at once, as
//! in every other phase.

use super::discovery::MockDiscovery;
use super::launcher::Launcher;
use super::schedule::{Action, Event, Schedule};
use super::tally::Tally;
use crate::fleet::{Fleet, Stop};
use crate::progress::Progress;
use crate::record::NodeStatus;
use crate::record::churn_log::{
    ChurnLog, EventRecord, LiveFigures, MinMedMax, OrchPublish, Outcome, Removal, Sample,
};
use crate::runner::StopMode;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use testbed_contract::plan::{ChurnPhase, RemoveMode};
use testbed_contract::protocol::{Command, PeerAddr};
use testbed_contract::results::Subscription;
use tokio::time::Instant;

/// A launched peer that does not listen within this long fails the run (hung).
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// How often the executor looks at acknowledgements between heartbeats.
const POLL: Duration = Duration::from_millis(10);
/// After the last heartbeat and the delivery window, commands still under way get this long.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);

pub struct Context<'x, 'r> {
    pub fleet: &'x mut Fleet,
    pub launcher: &'x mut Launcher<'r>,
    /// Also prints the live line (not with `--quiet`).
    pub progress: &'x Progress,
    /// Who subscribed to what in earlier phases (topic → nodes).
    pub subscribers: BTreeMap<String, BTreeSet<u32>>,
}

struct Queued {
    ev: usize,
    action: Action,
}

struct InFlight {
    id: u64,
    ev: usize,
    action: Action,
    sent_ns: u64,
}

struct Exec<'x, 'r> {
    cx: Context<'x, 'r>,
    cfg: ChurnPhase,
    start: Instant,
    disc: MockDiscovery,
    friendships: BTreeSet<(u32, u32)>,
    queues: BTreeMap<u32, VecDeque<Queued>>,
    in_flight: BTreeMap<u32, InFlight>,
    /// Launched peers not yet listening: event index and launch time.
    starting: BTreeMap<u32, (usize, Instant)>,
    records: Vec<EventRecord>,
    tallies: Vec<Tally>,
    log: ChurnLog,
    received_base: u64,
    messages: u64,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Runs the phase; the log is returned also when the phase stopped early.
pub async fn run(
    cx: Context<'_, '_>,
    cfg: &ChurnPhase,
    schedule: &Schedule,
) -> (ChurnLog, Result<(), Stop>) {
    let start = Instant::now();
    let records = schedule
        .events
        .iter()
        .map(|s| EventRecord::new(s, schedule.due(s.tick).as_secs_f64() * 1e3))
        .collect();
    let tallies = schedule
        .events
        .iter()
        .map(|s| Tally {
            actions: s.event.actions().len() as u32,
            ..Tally::default()
        })
        .collect();
    let mut x = Exec {
        cx,
        cfg: cfg.clone(),
        start,
        disc: MockDiscovery::default(),
        friendships: BTreeSet::new(),
        queues: BTreeMap::new(),
        in_flight: BTreeMap::new(),
        starting: BTreeMap::new(),
        records,
        tallies,
        log: ChurnLog {
            config: cfg.clone(),
            started_ns: now_ns(),
            ..ChurnLog::default()
        },
        received_base: 0,
        messages: 0,
    };
    let r = x.drive(schedule).await;
    x.finish();
    (x.log, r)
}

impl Exec<'_, '_> {
    fn ms(&self, t: Instant) -> f64 {
        t.duration_since(self.start).as_secs_f64() * 1e3
    }

    async fn drive(&mut self, schedule: &Schedule) -> Result<(), Stop> {
        self.setup().await?;
        if self.cx.fleet.len() as u32 != schedule.first_new_index {
            self.cx.fleet.anomalies.push(format!(
                "churn: the fleet has {} nodes at the start of the phase, the schedule expects {}",
                self.cx.fleet.len(),
                schedule.first_new_index
            ));
            return Err(Stop::Fault);
        }
        self.cx
            .progress
            .stage("churn (heartbeats)", schedule.ticks as u64);
        let live_every = self.cfg.live_every;
        let mut next_live = live_every;
        let mut next = 0usize;
        for tick in 0..schedule.ticks {
            let due = crate::fleet::later(self.start, schedule.due(tick));
            self.wait(due).await?;
            let at = self.ms(Instant::now());
            while next < schedule.events.len() && schedule.events[next].tick == tick {
                self.apply(next, &schedule.events[next].event, at).await;
                next += 1;
            }
            self.pump();
            let figures = self.sample();
            self.cx.progress.set(tick as u64 + 1);
            if !live_every.is_zero() && schedule.due(tick) >= next_live {
                next_live += live_every;
                self.cx.progress.stdout_line(&figures.line());
            }
        }
        // The phase lasts `duration`; then every message's window closes while the fleet
        // still runs, and commands under way get a bounded time to finish.
        self.wait(crate::fleet::later(self.start, self.cfg.duration))
            .await?;
        self.cx.progress.stage("churn (delivery window)", 0);
        self.wait(crate::fleet::after(self.cfg.delivery_window))
            .await?;
        let until = Instant::now() + DRAIN_LIMIT;
        while (!self.in_flight.is_empty() || !self.queues.is_empty() || !self.starting.is_empty())
            && Instant::now() < until
        {
            self.wait((Instant::now() + POLL * 5).min(until)).await?;
        }
        let f = self.sample();
        if !live_every.is_zero() {
            self.cx.progress.stdout_line(&f.line());
        }
        Ok(())
    }

    /// Registers the fleet with discovery and notes where each node's counters start.
    async fn setup(&mut self) -> Result<(), Stop> {
        let wall0 = self.log.started_ns;
        let alive: Vec<u32> = self.cx.fleet.alive().map(|s| s.index()).collect();
        for &i in &alive {
            self.disc.register(i);
            if let Some(a) = self.cx.fleet.node(i).and_then(|s| s.peer_addr()) {
                self.disc.set_addr(a);
            }
        }
        for (topic, nodes) in &self.cx.subscribers {
            for &n in nodes {
                self.log.spans.entry(n).or_default().push(Subscription {
                    topic: topic.clone(),
                    from_ns: wall0,
                    to_ns: None,
                });
            }
        }
        // Fresh counters: sequence numbers go on from what each node already published.
        let ids: Vec<u64> = alive
            .iter()
            .filter_map(|&i| self.cx.fleet.command(i, Command::Report))
            .collect();
        self.cx
            .fleet
            .await_acks(
                &ids,
                Instant::now() + Duration::from_secs(10),
                "its report at the start of churn",
            )
            .await?;
        for s in self.cx.fleet.nodes() {
            let snap = s.last_snapshot();
            self.log
                .base_seq
                .insert(s.index(), snap.map_or(0, |x| x.published));
            self.received_base += snap.map_or(0, |x| x.received);
        }
        Ok(())
    }

    /// Processes fleet events until `until`, keeping commands flowing.
    async fn wait(&mut self, until: Instant) -> Result<(), Stop> {
        loop {
            self.pump();
            // A schedule running behind never waits: the stop conditions are checked anyway.
            self.cx.fleet.check()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            self.cx
                .fleet
                .wait_until((now + POLL).min(until), |_| false)
                .await?;
        }
    }

    async fn apply(&mut self, ev: usize, event: &Event, at_ms: f64) {
        self.records[ev].at_ms = Some(at_ms);
        let actions = event.actions();
        match event {
            Event::AddPeer { peer, .. } => self.disc.register(*peer),
            Event::RemovePeer { peer, .. } => {
                self.disc.unregister(*peer);
                self.friendships.retain(|(a, b)| a != peer && b != peer);
            }
            Event::AddTopic { topic, joins } | Event::PeakRandomTopic { topic, joins, .. } => {
                self.disc.create_topic(topic);
                for j in joins {
                    self.disc.announce(j.peer, topic);
                }
            }
            Event::RemoveTopic { topic, .. } => {
                self.disc.remove_topic(topic);
            }
            Event::PeakEnd { topic, peers } => {
                for p in peers {
                    self.disc.withdraw(*p, topic);
                }
            }
            Event::AddFriend {
                peer,
                friend,
                topic,
                ..
            } => {
                self.friendships
                    .insert(((*peer).min(*friend), (*peer).max(*friend)));
                if let Some(t) = topic {
                    self.disc.announce(*friend, t);
                }
            }
            Event::ForgetFriends { pairs } => {
                for [a, b] in pairs {
                    self.friendships.remove(&((*a).min(*b), (*a).max(*b)));
                }
            }
            Event::JoinRandomTopic { peer, topic, .. }
            | Event::JoinFriendsTopic { peer, topic, .. } => self.disc.announce(*peer, topic),
            Event::LeaveRandomTopic { peer, topic } => self.disc.withdraw(*peer, topic),
            Event::MessageRandomTopic { .. } => {}
        }
        for action in actions {
            match action {
                Action::Launch { peer, group } => self.launch(ev, peer, &group).await,
                Action::Stop { peer, mode } => self.stop(ev, peer, mode).await,
                other => {
                    let peer = other.peer();
                    if self.gone(peer) {
                        self.skip(
                            ev,
                            format!("node {peer} was removed or failed before its turn"),
                        );
                    } else {
                        self.queues
                            .entry(peer)
                            .or_default()
                            .push_back(Queued { ev, action: other });
                    }
                }
            }
        }
        self.settle_if_done(ev);
    }

    /// A node that will never take a command again.
    fn gone(&self, peer: u32) -> bool {
        self.cx
            .fleet
            .node(peer)
            .is_none_or(|s| s.ended() || (s.hello() && !s.alive()))
    }

    async fn launch(&mut self, ev: usize, peer: u32, group: &str) {
        if peer as usize != self.cx.fleet.len() {
            self.cx.fleet.anomalies.push(format!(
                "churn: peer {peer} was to be launched, but the fleet has {} nodes",
                self.cx.fleet.len()
            ));
            self.fail(ev, format!("node {peer}: index out of sequence"));
            return;
        }
        match self.cx.launcher.launch(peer, group).await {
            Ok(slot) => {
                self.cx.fleet.add(slot);
                self.log.added.push(peer);
                self.starting.insert(peer, (ev, Instant::now()));
            }
            Err(e) => {
                self.cx
                    .fleet
                    .anomalies
                    .push(format!("churn: cannot launch node {peer}: {e}"));
                self.fail(ev, format!("node {peer}: {e}"));
            }
        }
    }

    async fn stop(&mut self, ev: usize, peer: u32, mode: RemoveMode) {
        if self.cx.fleet.node(peer).is_none() {
            self.skip(ev, format!("node {peer} does not exist"));
            return;
        }
        // Removed first: from now on its exit and its closed channel are expected.
        if !self.cx.fleet.remove(peer) {
            self.skip(ev, format!("node {peer} had already ended"));
            return;
        }
        let at_ns = now_ns();
        self.log.removals.insert(peer, Removal { at_ns, mode });
        for s in self
            .log
            .spans
            .entry(peer)
            .or_default()
            .iter_mut()
            .filter(|s| s.to_ns.is_none())
        {
            s.to_ns = Some(at_ns);
        }
        if let Some((launch_ev, _)) = self.starting.remove(&peer) {
            self.skip(
                launch_ev,
                format!("node {peer} was removed before it listened"),
            );
        }
        if let Some(q) = self.queues.remove(&peer) {
            for item in q {
                self.skip(item.ev, format!("node {peer} was removed before its turn"));
            }
        }
        let how = match mode {
            RemoveMode::Graceful => StopMode::Graceful,
            RemoveMode::Kill => StopMode::Kill,
        };
        match self.cx.launcher.stop(peer, how).await {
            Ok(()) => self.done(ev),
            Err(e) => self.fail(ev, format!("node {peer}: stopping it failed: {e}")),
        }
    }

    /// Moves commands along: listening peers, answered commands, the next command per node.
    fn pump(&mut self) {
        // New peers that now listen (or never will).
        let starting: Vec<(u32, usize, Instant)> = self
            .starting
            .iter()
            .map(|(p, (e, t))| (*p, *e, *t))
            .collect();
        for (peer, ev, launched) in starting {
            let Some(slot) = self.cx.fleet.node(peer) else {
                continue;
            };
            if slot.listening() {
                self.starting.remove(&peer);
                if let Some(a) = slot.peer_addr() {
                    self.disc.set_addr(a);
                }
                self.done(ev);
            } else if slot.fault().is_some() || slot.exit().is_some() {
                self.starting.remove(&peer);
                self.fail(ev, format!("node {peer} ended before it listened"));
            } else if launched.elapsed() > STARTUP_LIMIT {
                self.starting.remove(&peer);
                self.fail(
                    ev,
                    format!(
                        "node {peer} did not listen within {}s",
                        STARTUP_LIMIT.as_secs()
                    ),
                );
                self.cx.fleet.fault(
                    peer,
                    NodeStatus::Hung,
                    format!(
                        "node {peer} (added by churn) did not report its listen address within {}s",
                        STARTUP_LIMIT.as_secs()
                    ),
                );
            }
        }
        // Answers.
        let flying: Vec<u32> = self.in_flight.keys().copied().collect();
        for peer in flying {
            let id = self.in_flight[&peer].id;
            if let Some(ack) = self.cx.fleet.ack(id).cloned() {
                let f = self.in_flight.remove(&peer).expect("in flight");
                self.answered(f, ack.ok, ack.error, &ack.info);
            } else if self.gone(peer) {
                let f = self.in_flight.remove(&peer).expect("in flight");
                self.skip(f.ev, format!("node {peer} was removed before it answered"));
            }
        }
        // Next commands.
        let waiting: Vec<u32> = self.queues.keys().copied().collect();
        for peer in waiting {
            if self.in_flight.contains_key(&peer) {
                continue;
            }
            if self.gone(peer) {
                for item in self.queues.remove(&peer).unwrap_or_default() {
                    self.skip(
                        item.ev,
                        format!("node {peer} was removed or failed before its turn"),
                    );
                }
                continue;
            }
            if !self.cx.fleet.node(peer).is_some_and(|s| s.listening()) {
                continue; // not listening yet
            }
            while let Some(item) = self.queues.get_mut(&peer).and_then(VecDeque::pop_front) {
                if self.send(item) {
                    break;
                }
            }
            if self.queues.get(&peer).is_some_and(VecDeque::is_empty) {
                self.queues.remove(&peer);
            }
        }
    }

    /// Sends one queued action; false when there was nothing to send (settled at once).
    fn send(&mut self, item: Queued) -> bool {
        let Queued { ev, action } = item;
        let peer = action.peer();
        let sent_ns = now_ns();
        let cmd = match &action {
            Action::Connect { to, .. } => {
                let peers: Vec<PeerAddr> = to
                    .iter()
                    .filter_map(|t| self.disc.addr(*t).cloned())
                    .collect();
                let missing = to.len() - peers.len();
                if peers.is_empty() {
                    self.skip(
                        ev,
                        format!("node {peer}: none of {to:?} is registered and listening"),
                    );
                    return false;
                }
                if missing > 0 {
                    self.records[ev].notes.push(format!(
                        "node {peer}: {missing} of {} peers to dial had left or did not listen yet",
                        to.len()
                    ));
                }
                Command::Connect { peers }
            }
            Action::Subscribe { topic, .. } => Command::Subscribe {
                topics: vec![topic.clone()],
                wait_mesh: false,
                mesh_timeout_ms: 0,
            },
            Action::Unsubscribe { topic, .. } => {
                // Conservative: not counted as subscribed from the moment the leave was sent.
                for s in self.log.spans.entry(peer).or_default().iter_mut() {
                    if &s.topic == topic && s.to_ns.is_none() {
                        s.to_ns = Some(sent_ns);
                    }
                }
                Command::Unsubscribe {
                    topics: vec![topic.clone()],
                }
            }
            Action::Publish { topic, size, .. } => Command::Publish {
                topic: topic.clone(),
                count: 1,
                rate: None,
                size: *size,
                peer_timeout_ms: self.cfg.publish_peer_timeout.as_millis() as u64,
            },
            Action::Launch { .. } | Action::Stop { .. } => {
                unreachable!("launch and stop are not queued")
            }
        };
        match self.cx.fleet.command_tolerated(peer, cmd) {
            Some(id) => {
                self.in_flight.insert(
                    peer,
                    InFlight {
                        id,
                        ev,
                        action,
                        sent_ns,
                    },
                );
                true
            }
            None => {
                self.skip(ev, format!("node {peer} could not be reached"));
                false
            }
        }
    }

    fn answered(&mut self, f: InFlight, ok: bool, error: Option<String>, info: &serde_json::Value) {
        let peer = f.action.peer();
        let now = now_ns();
        match &f.action {
            Action::Subscribe { topic, .. } if ok => {
                // Conservative: counted as subscribed from the acknowledgement on.
                self.log.spans.entry(peer).or_default().push(Subscription {
                    topic: topic.clone(),
                    from_ns: now,
                    to_ns: None,
                });
            }
            Action::Publish { topic, .. } => {
                let published = info
                    .get("published")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(u64::from(ok)) as u32;
                self.messages += published as u64;
                self.log
                    .publishes
                    .entry(peer)
                    .or_default()
                    .push(OrchPublish {
                        topic: topic.clone(),
                        sent_ns: f.sent_ns,
                        acked_ns: now,
                        published,
                    });
            }
            _ => {}
        }
        if ok {
            self.done(f.ev);
        } else {
            let op = match &f.action {
                Action::Connect { .. } => "connect",
                Action::Subscribe { .. } => "subscribe",
                Action::Unsubscribe { .. } => "unsubscribe",
                Action::Publish { .. } => "publish",
                Action::Launch { .. } | Action::Stop { .. } => "?",
            };
            self.fail(
                f.ev,
                format!(
                    "node {peer}: {op} failed: {}",
                    error.unwrap_or_else(|| "no reason given".into())
                ),
            );
        }
    }

    fn done(&mut self, ev: usize) {
        self.tallies[ev].ok += 1;
        self.settle_if_done(ev);
    }

    fn fail(&mut self, ev: usize, note: String) {
        self.tallies[ev].failed += 1;
        self.records[ev].notes.push(note);
        self.settle_if_done(ev);
    }

    fn skip(&mut self, ev: usize, note: String) {
        self.tallies[ev].skipped += 1;
        self.records[ev].notes.push(note);
        self.settle_if_done(ev);
    }

    fn settle_if_done(&mut self, ev: usize) {
        if self.tallies[ev].settled() && self.records[ev].at_ms.is_some() {
            self.records[ev].outcome = self.tallies[ev].outcome();
            self.records[ev].done_ms = Some(self.ms(Instant::now()));
        }
    }

    /// Figures of this moment: a chart sample and the live view.
    fn sample(&mut self) -> LiveFigures {
        let fleet = &*self.cx.fleet;
        let peers = fleet.nodes().iter().filter(|s| !s.ended()).count() as u32;
        let connections = fleet
            .alive()
            .filter_map(|s| s.last_snapshot())
            .map(|s| s.connected_peers as u64)
            .sum::<u64>()
            / 2;
        let received_now: u64 = fleet
            .nodes()
            .iter()
            .map(|s| {
                s.result()
                    .map(|r| r.received)
                    .or(s.last_snapshot().map(|x| x.received))
                    .unwrap_or(0)
            })
            .sum();
        let per_topic: Vec<u32> = self.disc.topics().map(|(_, m)| m.len() as u32).collect();
        let memberships = per_topic.iter().sum();
        let expected = self.expected_so_far();
        let received = received_now.saturating_sub(self.received_base);
        let applied = self.records.iter().filter(|r| r.at_ms.is_some()).count() as u64;
        let failed = self
            .records
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Partial))
            .count() as u64;
        let elapsed_s = self.start.elapsed().as_secs_f64();
        let f = LiveFigures {
            elapsed_s,
            peers,
            peers_added: self.log.added.len() as u32,
            peers_removed: self.log.removals.len() as u32,
            topics: self.disc.topic_count() as u32,
            connections: connections as u32,
            friendships: self.friendships.len() as u32,
            peers_per_topic: MinMedMax::of(per_topic),
            messages: self.messages,
            received,
            expected,
            missed_estimate: expected.saturating_sub(received),
            events_applied: applied,
            events_failed: failed,
        };
        self.log.samples.push(Sample {
            t_s: elapsed_s,
            peers,
            topics: f.topics,
            connections: f.connections,
            friendships: f.friendships,
            memberships,
        });
        if let Some(m) = &self.cx.fleet.live {
            m.set_churn(&f);
        }
        self.log.last_live = Some(f.clone());
        f
    }

    /// Receivers the orchestrator's record counts as subscribed from each acknowledged
    /// publish until its window closed (or now, for windows still open).
    fn expected_so_far(&self) -> u64 {
        let now = now_ns();
        let window = self.cfg.delivery_window.as_nanos() as u64;
        let mut n = 0;
        for (origin, pubs) in &self.log.publishes {
            for p in pubs.iter().filter(|p| p.published > 0) {
                let end = (p.acked_ns + window).min(now);
                for (node, spans) in &self.log.spans {
                    if node == origin {
                        continue;
                    }
                    let covered = spans.iter().any(|s| {
                        s.topic == p.topic
                            && s.from_ns <= p.sent_ns
                            && s.to_ns.is_none_or(|to| to >= end)
                    });
                    n += u64::from(covered) * p.published as u64;
                }
            }
        }
        n
    }

    /// Closes the record: outcomes of what never finished, the event log.
    fn finish(&mut self) {
        for (i, r) in self.records.iter_mut().enumerate() {
            if r.at_ms.is_some() {
                r.outcome = self.tallies[i].outcome();
            }
        }
        self.log.ended_ns = now_ns();
        self.log.events = std::mem::take(&mut self.records);
    }
}
