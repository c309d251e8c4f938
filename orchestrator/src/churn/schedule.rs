//! The churn schedule: a pure, seeded generator of the whole event sequence, computed before
//! the run from the plan alone. Same plan and seed ⇒ same events with the same arguments,
//! whatever the processes do; the executor only applies them (and logs how each went).
//!
//! A model of the simulated network (peers, topics, friendships, the discovery service's
//! membership) decides every event the way the reference simulator does: every heartbeat,
//! each event kind whose relative delay (`frequency × heartbeat × random drift`) has passed
//! since it last happened is tried once, in a fixed order; it happens when its preconditions
//! hold (a free peer, a topic below its limit …), otherwise it is tried again next heartbeat.
//! A peer added in one heartbeat takes part from the next one on.

use super::discovery::MockDiscovery;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use testbed_contract::plan::{ChurnPhase, Phase, Plan, RemoveMode};

/// The event kinds, in the order they are tried each heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    AddPeer,
    RemovePeer,
    AddTopic,
    RemoveTopic,
    PeakRandomTopic,
    AddFriend,
    ForgetFriends,
    JoinRandomTopic,
    JoinFriendsTopic,
    LeaveRandomTopic,
    MessageRandomTopic,
    /// Not tried: scheduled by a peak, `peak.duration` after it.
    PeakEnd,
}

impl Kind {
    pub const TRIED: [Kind; 11] = [
        Kind::AddPeer,
        Kind::RemovePeer,
        Kind::AddTopic,
        Kind::RemoveTopic,
        Kind::PeakRandomTopic,
        Kind::AddFriend,
        Kind::ForgetFriends,
        Kind::JoinRandomTopic,
        Kind::JoinFriendsTopic,
        Kind::LeaveRandomTopic,
        Kind::MessageRandomTopic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AddPeer => "add_peer",
            Kind::RemovePeer => "remove_peer",
            Kind::AddTopic => "add_topic",
            Kind::RemoveTopic => "remove_topic",
            Kind::PeakRandomTopic => "peak_random_topic",
            Kind::AddFriend => "add_friend",
            Kind::ForgetFriends => "forget_friends",
            Kind::JoinRandomTopic => "join_random_topic",
            Kind::JoinFriendsTopic => "join_friends_topic",
            Kind::LeaveRandomTopic => "leave_random_topic",
            Kind::MessageRandomTopic => "message_random_topic",
            Kind::PeakEnd => "peak_end",
        }
    }

    fn frequency(self, c: &ChurnPhase) -> u32 {
        let f = &c.frequencies;
        match self {
            Kind::AddPeer => f.add_peer,
            Kind::RemovePeer => f.remove_peer,
            Kind::AddTopic => f.add_topic,
            Kind::RemoveTopic => f.remove_topic,
            Kind::PeakRandomTopic => f.peak_random_topic,
            Kind::AddFriend => f.add_friend,
            Kind::ForgetFriends => f.forget_friends,
            Kind::JoinRandomTopic => f.join_random_topic,
            Kind::JoinFriendsTopic => f.join_friends_topic,
            Kind::LeaveRandomTopic => f.leave_random_topic,
            Kind::MessageRandomTopic => f.message_random_topic,
            Kind::PeakEnd => 0,
        }
    }
}

/// A peer joining a topic, and whom discovery told it to dial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    pub peer: u32,
    pub connect: Vec<u32>,
}

/// One event with its arguments, as decided by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    AddPeer {
        peer: u32,
        group: String,
    },
    RemovePeer {
        peer: u32,
        mode: RemoveMode,
    },
    /// A new topic; `joins` are its first members, in order.
    AddTopic {
        topic: String,
        joins: Vec<Join>,
    },
    RemoveTopic {
        topic: String,
        members: Vec<u32>,
    },
    PeakRandomTopic {
        topic: String,
        joins: Vec<Join>,
        until_tick: u32,
    },
    /// The peak's joiners that are still members leave.
    PeakEnd {
        topic: String,
        peers: Vec<u32>,
    },
    /// `peer` dials `friend`; `friend` joins `topic` (one of `peer`'s) when it can.
    AddFriend {
        peer: u32,
        friend: u32,
        topic: Option<String>,
        connect: Vec<u32>,
    },
    ForgetFriends {
        pairs: Vec<[u32; 2]>,
    },
    JoinRandomTopic {
        peer: u32,
        topic: String,
        connect: Vec<u32>,
    },
    JoinFriendsTopic {
        peer: u32,
        friend: u32,
        topic: String,
        connect: Vec<u32>,
    },
    LeaveRandomTopic {
        peer: u32,
        topic: String,
    },
    MessageRandomTopic {
        peer: u32,
        topic: String,
        size: u32,
    },
}

impl Event {
    pub fn kind(&self) -> Kind {
        match self {
            Event::AddPeer { .. } => Kind::AddPeer,
            Event::RemovePeer { .. } => Kind::RemovePeer,
            Event::AddTopic { .. } => Kind::AddTopic,
            Event::RemoveTopic { .. } => Kind::RemoveTopic,
            Event::PeakRandomTopic { .. } => Kind::PeakRandomTopic,
            Event::PeakEnd { .. } => Kind::PeakEnd,
            Event::AddFriend { .. } => Kind::AddFriend,
            Event::ForgetFriends { .. } => Kind::ForgetFriends,
            Event::JoinRandomTopic { .. } => Kind::JoinRandomTopic,
            Event::JoinFriendsTopic { .. } => Kind::JoinFriendsTopic,
            Event::LeaveRandomTopic { .. } => Kind::LeaveRandomTopic,
            Event::MessageRandomTopic { .. } => Kind::MessageRandomTopic,
        }
    }

    /// What the executor does for this event, in order.
    pub fn actions(&self) -> Vec<Action> {
        let join = |topic: &str, j: &Join| {
            let mut v = Vec::new();
            if !j.connect.is_empty() {
                v.push(Action::Connect {
                    peer: j.peer,
                    to: j.connect.clone(),
                });
            }
            v.push(Action::Subscribe {
                peer: j.peer,
                topic: topic.to_string(),
            });
            v
        };
        match self {
            Event::AddPeer { peer, group } => vec![Action::Launch {
                peer: *peer,
                group: group.clone(),
            }],
            Event::RemovePeer { peer, mode } => vec![Action::Stop {
                peer: *peer,
                mode: *mode,
            }],
            Event::AddTopic { topic, joins } | Event::PeakRandomTopic { topic, joins, .. } => {
                joins.iter().flat_map(|j| join(topic, j)).collect()
            }
            Event::RemoveTopic {
                topic,
                members: peers,
            }
            | Event::PeakEnd { topic, peers } => peers
                .iter()
                .map(|&peer| Action::Unsubscribe {
                    peer,
                    topic: topic.clone(),
                })
                .collect(),
            Event::AddFriend {
                peer,
                friend,
                topic,
                connect,
            } => {
                let mut v = vec![Action::Connect {
                    peer: *peer,
                    to: vec![*friend],
                }];
                if let Some(t) = topic {
                    v.extend(join(
                        t,
                        &Join {
                            peer: *friend,
                            connect: connect.clone(),
                        },
                    ));
                }
                v
            }
            Event::ForgetFriends { .. } => Vec::new(),
            Event::JoinRandomTopic {
                peer,
                topic,
                connect,
            }
            | Event::JoinFriendsTopic {
                peer,
                topic,
                connect,
                ..
            } => join(
                topic,
                &Join {
                    peer: *peer,
                    connect: connect.clone(),
                },
            ),
            Event::LeaveRandomTopic { peer, topic } => vec![Action::Unsubscribe {
                peer: *peer,
                topic: topic.clone(),
            }],
            Event::MessageRandomTopic { peer, topic, size } => vec![Action::Publish {
                peer: *peer,
                topic: topic.clone(),
                size: *size,
            }],
        }
    }
}

/// One thing done to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Launch { peer: u32, group: String },
    Stop { peer: u32, mode: RemoveMode },
    Connect { peer: u32, to: Vec<u32> },
    Subscribe { peer: u32, topic: String },
    Unsubscribe { peer: u32, topic: String },
    Publish { peer: u32, topic: String, size: u32 },
}

impl Action {
    /// The node the action is carried out on.
    pub fn peer(&self) -> u32 {
        match self {
            Action::Launch { peer, .. }
            | Action::Stop { peer, .. }
            | Action::Connect { peer, .. }
            | Action::Subscribe { peer, .. }
            | Action::Unsubscribe { peer, .. }
            | Action::Publish { peer, .. } => *peer,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduled {
    /// Position in the sequence, from 0.
    pub seq: u64,
    /// Heartbeat number; 0 is the setup (initial topics), events of tick `k` are due `k`
    /// heartbeats after the phase started.
    pub tick: u32,
    #[serde(flatten)]
    pub event: Event,
}

/// The initial fleet: global index and group id of each node, in index order.
#[derive(Debug, Clone)]
pub struct InitialFleet {
    pub peers: Vec<(u32, String)>,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub heartbeat: Duration,
    /// Heartbeats in the phase; events fall on ticks `0..ticks`.
    pub ticks: u32,
    pub events: Vec<Scheduled>,
    /// Index of the first peer the phase adds, and one past the last.
    pub first_new_index: u32,
    pub end_index: u32,
    /// The group new peers are launched from.
    pub new_group: String,
}

impl Schedule {
    pub fn due(&self, tick: u32) -> Duration {
        self.heartbeat.checked_mul(tick).unwrap_or(Duration::MAX)
    }
}

#[derive(Debug, Default, Clone)]
struct PeerModel {
    friends: BTreeSet<u32>,
    topics: BTreeSet<String>,
    /// First tick at which the peer takes part.
    ready_tick: u32,
}

struct Model<'a> {
    cfg: &'a ChurnPhase,
    rng: ChaCha8Rng,
    peers: BTreeMap<u32, PeerModel>,
    disc: MockDiscovery,
    next_index: u32,
    next_topic: u32,
    new_group: String,
    /// Peaks not yet ended: (end tick, topic, joiners).
    peaks: Vec<(u32, String, Vec<u32>)>,
    tick: u32,
}

/// The churn phase of a plan, with its schedule computed (at most one per plan).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Position of the phase in `workload`.
    pub phase: usize,
    pub config: ChurnPhase,
    pub schedule: Schedule,
}

impl Prepared {
    /// Group index (plan order) of every node index the run may have, initial and added:
    /// nodes keep latencies per origin group, so they must know the new peers' group too.
    pub fn origin_groups(&self, plan: &Plan) -> Vec<u16> {
        let mut groups = plan.group_of_index();
        let new = plan
            .groups
            .iter()
            .position(|g| g.id == self.schedule.new_group)
            .unwrap_or(0) as u16;
        groups.resize(self.schedule.end_index as usize, new);
        groups
    }
}

/// The churn phase of `plan` and its schedule, if it has one.
pub fn prepare(plan: &Plan) -> Option<Prepared> {
    let (phase, config) = plan
        .workload
        .iter()
        .enumerate()
        .find_map(|(i, p)| match p {
            Phase::Churn(c) => Some((i, c.clone())),
            _ => None,
        })?;
    let new_group = config
        .new_peers_group
        .clone()
        .or_else(|| plan.groups.first().map(|g| g.id.clone()))
        .unwrap_or_default();
    let group_of = plan.group_of_index();
    let fleet = InitialFleet {
        peers: group_of
            .iter()
            .enumerate()
            .map(|(i, g)| (i as u32, plan.groups[*g as usize].id.clone()))
            .collect(),
    };
    let schedule = generate(&config, &fleet, &new_group, plan.seed);
    Some(Prepared {
        phase,
        config,
        schedule,
    })
}

/// Computes the whole schedule of a churn phase.
pub fn generate(cfg: &ChurnPhase, fleet: &InitialFleet, new_group: &str, seed: u64) -> Schedule {
    let heartbeat = cfg.heartbeat.max(Duration::from_millis(1));
    let ticks = (cfg.duration.as_nanos() / heartbeat.as_nanos()).max(1) as u32;
    let first_new_index = fleet.peers.iter().map(|p| p.0 + 1).max().unwrap_or(0);
    let mut m = Model {
        cfg,
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6368_7572_6e5f_7369),
        peers: BTreeMap::new(),
        disc: MockDiscovery::default(),
        next_index: first_new_index,
        next_topic: 0,
        new_group: new_group.to_string(),
        peaks: Vec::new(),
        tick: 0,
    };
    for (p, _) in &fleet.peers {
        m.peers.insert(*p, PeerModel::default());
        m.disc.register(*p);
    }
    let mut events = Vec::new();
    let push = |tick: u32, event: Event, events: &mut Vec<Scheduled>| {
        let seq = events.len() as u64;
        events.push(Scheduled { seq, tick, event });
    };
    for _ in 0..cfg.initial_topics {
        if let Some(e) = m.add_topic() {
            push(0, e, &mut events);
        }
    }
    let mut last: BTreeMap<Kind, u32> = BTreeMap::new();
    for tick in 1..ticks {
        m.tick = tick;
        for e in m.end_peaks() {
            push(tick, e, &mut events);
        }
        for kind in Kind::TRIED {
            let freq = kind.frequency(cfg);
            if freq == 0 {
                continue;
            }
            let drift = cfg.drift.clamp(0.0, 0.99);
            let factor = if drift > 0.0 {
                m.rng.random_range(1.0 - drift..=1.0 + drift)
            } else {
                1.0
            };
            let delay = freq as f64 * factor;
            if last
                .get(&kind)
                .is_some_and(|&l| ((tick - l) as f64) < delay)
            {
                continue;
            }
            if let Some(e) = m.try_kind(kind) {
                last.insert(kind, tick);
                push(tick, e, &mut events);
            }
        }
    }
    Schedule {
        heartbeat,
        ticks,
        events,
        first_new_index,
        end_index: m.next_index,
        new_group: new_group.to_string(),
    }
}

impl Model<'_> {
    fn ready(&self) -> Vec<u32> {
        self.peers
            .iter()
            .filter(|(_, p)| p.ready_tick <= self.tick)
            .map(|(i, _)| *i)
            .collect()
    }

    fn pick<T: Clone>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.rng.random_range(0..v.len())].clone())
    }

    fn topic_names(&self) -> Vec<String> {
        self.disc.topics().map(|(t, _)| t.clone()).collect()
    }

    fn members(&self, topic: &str) -> usize {
        self.disc.members(topic).map_or(0, |m| m.len())
    }

    fn can_join(&self, peer: u32, topic: &str) -> bool {
        let l = &self.cfg.limits;
        self.peers.get(&peer).is_some_and(|p| {
            !p.topics.contains(topic) && (p.topics.len() as u32) < l.max_topics_per_peer
        }) && (self.members(topic) as u32) < l.max_peers_per_topic
    }

    fn join(&mut self, peer: u32, topic: &str) -> Join {
        let k = self.cfg.discovery_peers as usize;
        let connect = self.disc.find(topic, k, peer, &mut self.rng);
        self.disc.announce(peer, topic);
        self.peers
            .get_mut(&peer)
            .expect("joining peer exists")
            .topics
            .insert(topic.to_string());
        Join { peer, connect }
    }

    fn leave(&mut self, peer: u32, topic: &str) {
        self.disc.withdraw(peer, topic);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.topics.remove(topic);
        }
    }

    fn try_kind(&mut self, kind: Kind) -> Option<Event> {
        match kind {
            Kind::AddPeer => self.add_peer(),
            Kind::RemovePeer => self.remove_peer(),
            Kind::AddTopic => self.add_topic(),
            Kind::RemoveTopic => self.remove_topic(),
            Kind::PeakRandomTopic => self.peak(),
            Kind::AddFriend => self.add_friend(),
            Kind::ForgetFriends => self.forget_friends(),
            Kind::JoinRandomTopic => self.join_random(),
            Kind::JoinFriendsTopic => self.join_friends(),
            Kind::LeaveRandomTopic => self.leave_random(),
            Kind::MessageRandomTopic => self.message(),
            Kind::PeakEnd => None,
        }
    }

    fn add_peer(&mut self) -> Option<Event> {
        if self.peers.len() as u32 >= self.cfg.limits.max_peers {
            return None;
        }
        let peer = self.next_index;
        self.next_index += 1;
        self.peers.insert(
            peer,
            PeerModel {
                ready_tick: self.tick + 1,
                ..PeerModel::default()
            },
        );
        self.disc.register(peer);
        Some(Event::AddPeer {
            peer,
            group: self.new_group.clone(),
        })
    }

    fn remove_peer(&mut self) -> Option<Event> {
        if self.peers.len() as u32 <= self.cfg.limits.min_peers {
            return None;
        }
        let ready = self.ready();
        let peer = self.pick(&ready)?;
        let gone = self.peers.remove(&peer)?;
        for f in gone.friends {
            if let Some(fp) = self.peers.get_mut(&f) {
                fp.friends.remove(&peer);
            }
        }
        self.disc.unregister(peer);
        for (_, _, joiners) in &mut self.peaks {
            joiners.retain(|&p| p != peer);
        }
        Some(Event::RemovePeer {
            peer,
            mode: self.cfg.remove_mode,
        })
    }

    fn add_topic(&mut self) -> Option<Event> {
        let l = &self.cfg.limits;
        let eligible = |m: &Self| -> Vec<u32> {
            m.ready()
                .into_iter()
                .filter(|p| (m.peers[p].topics.len() as u32) < m.cfg.limits.max_topics_per_peer)
                .collect()
        };
        if self.disc.topic_count() as u32 >= l.max_topics || eligible(self).is_empty() {
            return None;
        }
        let topic = format!("t{}", self.next_topic);
        self.next_topic += 1;
        self.disc.create_topic(&topic);
        let mut joins = Vec::new();
        for _ in 0..self.cfg.initial_peers_per_topic {
            let candidates: Vec<u32> = eligible(self)
                .into_iter()
                .filter(|p| self.can_join(*p, &topic))
                .collect();
            let Some(p) = self.pick(&candidates) else {
                break;
            };
            joins.push(self.join(p, &topic));
        }
        Some(Event::AddTopic { topic, joins })
    }

    fn remove_topic(&mut self) -> Option<Event> {
        let topics = self.topic_names();
        let topic = self.pick(&topics)?;
        let members: Vec<u32> = self.disc.remove_topic(&topic).into_iter().collect();
        for p in &members {
            if let Some(pm) = self.peers.get_mut(p) {
                pm.topics.remove(&topic);
            }
        }
        self.peaks.retain(|(_, t, _)| *t != topic);
        Some(Event::RemoveTopic { topic, members })
    }

    fn peak(&mut self) -> Option<Event> {
        let n = self.cfg.peak.peers;
        if n == 0 || self.disc.topic_count() < 3 || (self.ready().len() as u32) < 2 * n {
            return None;
        }
        let topics = self.topic_names();
        let topic = self.pick(&topics)?;
        let mut joins = Vec::new();
        for _ in 0..n {
            let candidates: Vec<u32> = self
                .ready()
                .into_iter()
                .filter(|p| self.can_join(*p, &topic))
                .collect();
            let Some(p) = self.pick(&candidates) else {
                break;
            };
            joins.push(self.join(p, &topic));
        }
        if joins.is_empty() {
            return None;
        }
        let hb = self
            .cfg
            .heartbeat
            .max(Duration::from_millis(1))
            .as_secs_f64();
        let until_tick =
            self.tick + (self.cfg.peak.duration.as_secs_f64() / hb).ceil().max(1.0) as u32;
        self.peaks.push((
            until_tick,
            topic.clone(),
            joins.iter().map(|j| j.peer).collect(),
        ));
        Some(Event::PeakRandomTopic {
            topic,
            joins,
            until_tick,
        })
    }

    fn end_peaks(&mut self) -> Vec<Event> {
        let tick = self.tick;
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.peaks)
            .into_iter()
            .partition(|(t, _, _)| *t <= tick);
        self.peaks = rest;
        let mut out = Vec::new();
        for (_, topic, joiners) in due {
            let peers: Vec<u32> = joiners
                .into_iter()
                .filter(|p| {
                    self.peers
                        .get(p)
                        .is_some_and(|pm| pm.topics.contains(&topic))
                })
                .collect();
            for p in &peers {
                self.leave(*p, &topic);
            }
            if !peers.is_empty() {
                out.push(Event::PeakEnd { topic, peers });
            }
        }
        out
    }

    fn add_friend(&mut self) -> Option<Event> {
        let ready = self.ready();
        let a = self.pick(&ready)?;
        let b = self.pick(&ready)?;
        let max = self.cfg.limits.max_friends_per_peer as usize;
        let (pa, pb) = (&self.peers[&a], &self.peers[&b]);
        if a == b
            || pa.friends.contains(&b)
            || pa.topics.is_empty()
            || pa.friends.len() >= max
            || pb.friends.len() >= max
        {
            return None;
        }
        let topics: Vec<String> = pa.topics.iter().cloned().collect();
        let topic = self.pick(&topics)?;
        self.peers.get_mut(&a)?.friends.insert(b);
        self.peers.get_mut(&b)?.friends.insert(a);
        let (topic, connect) = if self.can_join(b, &topic) {
            let mut j = self.join(b, &topic);
            j.connect.retain(|&p| p != a);
            (Some(topic), j.connect)
        } else {
            (None, Vec::new())
        };
        Some(Event::AddFriend {
            peer: a,
            friend: b,
            topic,
            connect,
        })
    }

    fn forget_friends(&mut self) -> Option<Event> {
        let mut pairs = Vec::new();
        for (&a, pa) in &self.peers {
            for &b in pa.friends.iter().filter(|&&b| b > a) {
                if self
                    .peers
                    .get(&b)
                    .is_none_or(|pb| pa.topics.is_disjoint(&pb.topics))
                {
                    pairs.push([a, b]);
                }
            }
        }
        if pairs.is_empty() {
            return None;
        }
        for [a, b] in &pairs {
            if let Some(p) = self.peers.get_mut(a) {
                p.friends.remove(b);
            }
            if let Some(p) = self.peers.get_mut(b) {
                p.friends.remove(a);
            }
        }
        Some(Event::ForgetFriends { pairs })
    }

    fn join_random(&mut self) -> Option<Event> {
        let ready = self.ready();
        let peer = self.pick(&ready)?;
        let topics = self.topic_names();
        let topic = self.pick(&topics)?;
        if !self.can_join(peer, &topic) {
            return None;
        }
        let j = self.join(peer, &topic);
        Some(Event::JoinRandomTopic {
            peer,
            topic,
            connect: j.connect,
        })
    }

    fn join_friends(&mut self) -> Option<Event> {
        let ready = self.ready();
        let peer = self.pick(&ready)?;
        let friends: Vec<u32> = self.peers[&peer].friends.iter().copied().collect();
        let friend = self.pick(&friends)?;
        let topics: Vec<String> = self.peers.get(&friend)?.topics.iter().cloned().collect();
        let topic = self.pick(&topics)?;
        if !self.can_join(peer, &topic) {
            return None;
        }
        let j = self.join(peer, &topic);
        Some(Event::JoinFriendsTopic {
            peer,
            friend,
            topic,
            connect: j.connect,
        })
    }

    fn leave_random(&mut self) -> Option<Event> {
        let ready = self.ready();
        let with_topics: Vec<u32> = ready
            .into_iter()
            .filter(|p| !self.peers[p].topics.is_empty())
            .collect();
        let peer = self.pick(&with_topics)?;
        let topics: Vec<String> = self.peers[&peer].topics.iter().cloned().collect();
        let topic = self.pick(&topics)?;
        self.leave(peer, &topic);
        Some(Event::LeaveRandomTopic { peer, topic })
    }

    fn message(&mut self) -> Option<Event> {
        let ready = self.ready();
        let peer = self.pick(&ready)?;
        let topics: Vec<String> = self.peers[&peer].topics.iter().cloned().collect();
        let topic = self.pick(&topics)?;
        if self.members(&topic) < 2 {
            return None;
        }
        Some(Event::MessageRandomTopic {
            peer,
            topic,
            size: self.cfg.message_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn fleet(n: u32) -> InitialFleet {
        InitialFleet {
            peers: (0..n).map(|i| (i, "peers".to_string())).collect(),
        }
    }

    fn reference() -> ChurnPhase {
        ChurnPhase {
            duration: Duration::from_secs(600),
            ..ChurnPhase::default()
        }
    }

    #[test]
    fn same_seed_same_events_other_seed_other_events() {
        let c = reference();
        let a = generate(&c, &fleet(20), "peers", 7);
        let b = generate(&c, &fleet(20), "peers", 7);
        assert_eq!(a.events, b.events);
        let other = generate(&c, &fleet(20), "peers", 8);
        assert_ne!(a.events, other.events);
        // Every kind happens in ten minutes of the reference's frequencies.
        let kinds: HashSet<Kind> = a.events.iter().map(|e| e.event.kind()).collect();
        for k in Kind::TRIED.iter().filter(|k| **k != Kind::LeaveRandomTopic) {
            assert!(kinds.contains(k), "{k:?} never happened");
        }
        assert!(
            a.events
                .windows(2)
                .all(|w| w[0].tick <= w[1].tick && w[0].seq + 1 == w[1].seq)
        );
    }

    /// Replays the events on a fresh model of membership and checks every limit.
    #[test]
    fn limits_hold_and_events_are_consistent() {
        let mut c = reference();
        c.limits.max_peers = 25;
        c.limits.min_peers = 12;
        c.frequencies.leave_random_topic = 5;
        c.frequencies.remove_peer = 4;
        let s = generate(&c, &fleet(20), "peers", 3);
        let mut peers: BTreeSet<u32> = (0..20).collect();
        let mut topics: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        let mut added_at: BTreeMap<u32, u32> = BTreeMap::new();
        let mut messages = 0;
        for e in &s.events {
            let live = |p: &u32, peers: &BTreeSet<u32>| {
                assert!(peers.contains(p), "{e:?}: peer {p} is not in the network")
            };
            // Peers take part from the heartbeat after they were added.
            for a in e.event.actions() {
                if !matches!(a, Action::Launch { .. }) {
                    assert!(added_at.get(&a.peer()).is_none_or(|t| *t < e.tick), "{e:?}");
                }
            }
            match &e.event {
                Event::AddPeer { peer, .. } => {
                    assert!(peers.insert(*peer));
                    added_at.insert(*peer, e.tick);
                }
                Event::RemovePeer { peer, .. } => {
                    assert!(peers.remove(peer));
                    for m in topics.values_mut() {
                        m.remove(peer);
                    }
                }
                Event::AddTopic { topic, joins } => {
                    assert!(
                        topics
                            .insert(topic.clone(), joins.iter().map(|j| j.peer).collect())
                            .is_none()
                    );
                    for (i, j) in joins.iter().enumerate() {
                        live(&j.peer, &peers);
                        // Discovery only names members that joined before.
                        assert!(
                            j.connect
                                .iter()
                                .all(|p| joins[..i].iter().any(|x| x.peer == *p))
                        );
                        assert!(j.connect.len() <= c.discovery_peers as usize);
                    }
                }
                Event::RemoveTopic { topic, members } => {
                    assert_eq!(
                        topics.remove(topic).unwrap(),
                        members.iter().copied().collect()
                    );
                }
                Event::PeakRandomTopic { topic, joins, .. } => {
                    for j in joins {
                        live(&j.peer, &peers);
                        let m = topics.get_mut(topic).unwrap();
                        assert!(j.connect.iter().all(|p| m.contains(p)));
                        assert!(m.insert(j.peer));
                    }
                }
                Event::PeakEnd { topic, peers: ps } => {
                    for p in ps {
                        assert!(topics.get_mut(topic).unwrap().remove(p));
                    }
                }
                Event::AddFriend {
                    peer,
                    friend,
                    topic,
                    connect,
                } => {
                    live(peer, &peers);
                    live(friend, &peers);
                    if let Some(t) = topic {
                        let m = topics.get_mut(t).unwrap();
                        assert!(m.contains(peer) && connect.iter().all(|p| m.contains(p)));
                        assert!(m.insert(*friend));
                    }
                }
                Event::JoinRandomTopic {
                    peer,
                    topic,
                    connect,
                }
                | Event::JoinFriendsTopic {
                    peer,
                    topic,
                    connect,
                    ..
                } => {
                    live(peer, &peers);
                    let m = topics.get_mut(topic).unwrap();
                    assert!(connect.iter().all(|p| m.contains(p) && p != peer));
                    assert!(m.insert(*peer), "{e:?}: already a member");
                }
                Event::LeaveRandomTopic { peer, topic } => {
                    assert!(topics.get_mut(topic).unwrap().remove(peer))
                }
                Event::MessageRandomTopic { peer, topic, .. } => {
                    let m = &topics[topic];
                    assert!(m.contains(peer) && m.len() >= 2);
                    messages += 1;
                }
                Event::ForgetFriends { .. } => {}
            }
            assert!(peers.len() as u32 <= c.limits.max_peers.max(20));
            assert!(peers.len() as u32 >= c.limits.min_peers);
            assert!(topics.len() as u32 <= c.limits.max_topics);
            for (t, m) in &topics {
                assert!(
                    m.len() as u32 <= c.limits.max_peers_per_topic,
                    "topic {t} has {} peers",
                    m.len()
                );
            }
            for p in &peers {
                let n = topics.values().filter(|m| m.contains(p)).count() as u32;
                assert!(n <= c.limits.max_topics_per_peer);
            }
        }
        assert!(messages > 50, "{messages} messages in ten minutes");
        assert!(s.end_index > 20);
        assert_eq!(s.first_new_index, 20);
    }

    #[test]
    fn setup_creates_the_initial_topics() {
        let s = generate(&reference(), &fleet(20), "peers", 1);
        let setup: Vec<_> = s.events.iter().take_while(|e| e.tick == 0).collect();
        assert_eq!(setup.len(), 10);
        for e in setup {
            let Event::AddTopic { joins, .. } = &e.event else {
                panic!("{e:?}")
            };
            assert_eq!(joins.len(), 5);
        }
    }
}
