//! The scheduling core: no I/O, no clock. Packets go in with the time they were read, the source
//! and destination node and their length; the core decides their fate from the link between the
//! two nodes' groups (partition → loss → bandwidth → delay) and hands each surviving packet back
//! when its release time has come. Given the seed and the same inputs it makes the same choices.
//!
//! State is kept per direction of each node pair (created on the first packet): its own ChaCha
//! random stream (plan seed, stream = the pair), Gilbert loss state, token bucket and the
//! release time of its last packet (FIFO order unless the profile allows reordering). Profiles
//! are per direction of each group pair and can change at run time (`set_link`), as can
//! partitions; timed plan events are applied by the core itself once [`Core::start_events`] set
//! their time zero.

mod link;

pub use link::{LinkModel, LinkOutcome, LinkState};

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use testbed_contract::plan::{EventAction, LinkParams, LinkProfile, Network, NetworkEvent};

/// Time in nanoseconds on whatever monotonic clock the caller uses.
pub type Nanos = u64;
/// A node's global index in the fleet.
pub type NodeId = u32;
/// A group's index in the plan's group list.
pub type GroupIdx = u16;

/// Why the core refused a configuration or an action.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    #[error("unknown group `{0}` in the network section (the runner passed groups: {1})")]
    UnknownGroup(String, String),
    #[error("network event {0} needs exactly one of `partition`, `heal`, `set_link`")]
    EmptyEvent(usize),
}

/// A change of the network, resolved against the group list.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Cut the sets from each other: `side[g]` is the set of group `g`, `None` if not listed.
    Partition {
        name: Option<String>,
        side: Vec<Option<u16>>,
    },
    /// Undo the named partition, or all of them.
    Heal { name: Option<String> },
    /// Patch the profile of these directions.
    SetLink {
        directions: Vec<(GroupIdx, GroupIdx)>,
        patch: LinkProfile,
    },
}

impl Action {
    /// Resolves a plan event's action against `groups` (plan order).
    pub fn from_event(
        event: &NetworkEvent,
        groups: &[String],
        index: usize,
    ) -> Result<Action, CoreError> {
        let idx = |g: &str| -> Result<GroupIdx, CoreError> {
            groups
                .iter()
                .position(|x| x == g)
                .map(|i| i as GroupIdx)
                .ok_or_else(|| CoreError::UnknownGroup(g.to_string(), groups.join(", ")))
        };
        match event.action().ok_or(CoreError::EmptyEvent(index))? {
            EventAction::Partition(p) => {
                let mut side = vec![None; groups.len()];
                for (s, set) in p.groups.iter().enumerate() {
                    for g in set {
                        side[idx(g)? as usize] = Some(s as u16);
                    }
                }
                Ok(Action::Partition {
                    name: p.name.clone(),
                    side,
                })
            }
            EventAction::Heal(h) => Ok(Action::Heal {
                name: h.partition.clone(),
            }),
            EventAction::SetLink(l) => {
                let directions = l
                    .directions()
                    .into_iter()
                    .map(|(f, t)| Ok((idx(f)?, idx(t)?)))
                    .collect::<Result<_, CoreError>>()?;
                Ok(Action::SetLink {
                    directions,
                    patch: l.profile(),
                })
            }
        }
    }
}

/// What the core did with a submitted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Will be handed back by [`Core::pop_due`] at this time.
    Scheduled(Nanos),
    Dropped(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The link's loss model.
    Loss,
    /// A partition separates the two groups (checked on arrival and again on release).
    Partition,
    /// The bandwidth queue is full.
    QueueFull,
    /// Source or destination is not a registered node.
    UnknownNode,
}

/// Counters of the core.
// Deserialize: run.json keeps these counters and the orchestrator reads them back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CoreStats {
    pub submitted: u64,
    pub released: u64,
    pub released_bytes: u64,
    pub dropped_loss: u64,
    pub dropped_partition: u64,
    pub dropped_queue: u64,
    pub dropped_unknown: u64,
    pub events_applied: u64,
    /// Most packets held at once.
    pub peak_in_flight: u64,
}

/// A packet whose time has come.
#[derive(Debug)]
pub struct Released<P> {
    pub at: Nanos,
    pub src: NodeId,
    pub dst: NodeId,
    pub payload: P,
}

struct Held<P> {
    at: Nanos,
    seq: u64,
    len: usize,
    src: NodeId,
    dst: NodeId,
    payload: P,
}

impl<P> PartialEq for Held<P> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<P> Eq for Held<P> {}
impl<P> PartialOrd for Held<P> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<P> Ord for Held<P> {
    /// Reversed: the heap's top is the earliest release, ties in submission order.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// The scheduler. `P` is whatever the caller wants back with a packet (its bytes, an id).
pub struct Core<P> {
    seed: u64,
    groups: Vec<String>,
    /// `models[from * n + to]`.
    models: Vec<LinkModel>,
    group_of: Vec<Option<GroupIdx>>,
    links: HashMap<u64, LinkState>,
    partitions: Vec<(Option<String>, Vec<Option<u16>>)>,
    /// Plan events (offset from their time zero, action), in order; `next_event` indexes it.
    events: Vec<(Nanos, Action)>,
    next_event: usize,
    events_zero: Option<Nanos>,
    heap: BinaryHeap<Held<P>>,
    seq: u64,
    stats: CoreStats,
}

impl<P> Core<P> {
    /// A core for the plan's `network` section, the plan's group ids (in plan order, a group's
    /// index is its [`GroupIdx`]) and the plan's seed. The section should have passed
    /// [`Network::validate`]; an unknown group is still refused here.
    pub fn new(network: &Network, groups: &[String], seed: u64) -> Result<Core<P>, CoreError> {
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        let models = network
            .link_matrix(&names)
            .into_iter()
            .flatten()
            .map(LinkModel::new)
            .collect();
        let mut events = Vec::new();
        for e in network.events_in_order() {
            let i = network
                .events
                .iter()
                .position(|x| std::ptr::eq(x, e))
                .unwrap_or_default();
            events.push((e.at.as_nanos() as Nanos, Action::from_event(e, groups, i)?));
        }
        for l in &network.links {
            for g in [&l.from, &l.to] {
                if !groups.contains(g) {
                    return Err(CoreError::UnknownGroup(g.clone(), groups.join(", ")));
                }
            }
        }
        Ok(Core {
            seed,
            groups: groups.to_vec(),
            models,
            group_of: Vec::new(),
            links: HashMap::new(),
            partitions: Vec::new(),
            events,
            next_event: 0,
            events_zero: None,
            heap: BinaryHeap::new(),
            seq: 0,
            stats: CoreStats::default(),
        })
    }

    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Registers node `node` as a member of group `group`.
    pub fn add_node(&mut self, node: NodeId, group: GroupIdx) {
        let i = node as usize;
        if self.group_of.len() <= i {
            self.group_of.resize(i + 1, None);
        }
        self.group_of[i] = Some(group);
    }

    /// Forgets a node: packets to or from it are dropped from now on (including held ones, on
    /// release).
    pub fn remove_node(&mut self, node: NodeId) {
        if let Some(g) = self.group_of.get_mut(node as usize) {
            *g = None;
        }
        self.links
            .retain(|k, _| (k >> 32) as NodeId != node && *k as NodeId != node);
    }

    pub fn group_of(&self, node: NodeId) -> Option<GroupIdx> {
        self.group_of.get(node as usize).copied().flatten()
    }

    /// The current profile of the direction `from → to`.
    pub fn link_params(&self, from: GroupIdx, to: GroupIdx) -> LinkParams {
        self.model(from, to).params
    }

    fn model(&self, from: GroupIdx, to: GroupIdx) -> &LinkModel {
        &self.models[from as usize * self.groups.len() + to as usize]
    }

    /// Time zero of the plan's events (e.g. the start of the workload).
    pub fn start_events(&mut self, now: Nanos) {
        self.events_zero = Some(now);
        self.apply_due_events(now);
    }

    /// Applies an action now.
    pub fn apply(&mut self, action: &Action) {
        self.stats.events_applied += 1;
        match action {
            Action::Partition { name, side } => {
                let mut side = side.clone();
                side.resize(self.groups.len(), None);
                self.partitions.push((name.clone(), side));
            }
            Action::Heal { name: None } => self.partitions.clear(),
            Action::Heal { name: Some(n) } => {
                self.partitions.retain(|(p, _)| p.as_deref() != Some(n));
            }
            Action::SetLink { directions, patch } => {
                let n = self.groups.len();
                for &(f, t) in directions {
                    let m = &mut self.models[f as usize * n + t as usize];
                    *m = LinkModel::new(m.params.patched(patch));
                }
            }
        }
        tracing::debug!(?action, "network action applied");
    }

    fn apply_due_events(&mut self, now: Nanos) {
        let Some(zero) = self.events_zero else { return };
        while let Some((at, _)) = self.events.get(self.next_event) {
            if zero + at > now {
                break;
            }
            let action = self.events[self.next_event].1.clone();
            self.next_event += 1;
            self.apply(&action);
        }
    }

    /// Whether a partition currently separates the two groups.
    pub fn partitioned(&self, a: GroupIdx, b: GroupIdx) -> bool {
        self.partitions.iter().any(|(_, side)| {
            matches!((side[a as usize], side[b as usize]), (Some(x), Some(y)) if x != y)
        })
    }

    /// A packet of `len` bytes read at `now` from node `src`, addressed to node `dst`.
    pub fn submit(
        &mut self,
        now: Nanos,
        src: NodeId,
        dst: NodeId,
        len: usize,
        payload: P,
    ) -> Verdict {
        self.apply_due_events(now);
        self.stats.submitted += 1;
        let (Some(gs), Some(gd)) = (self.group_of(src), self.group_of(dst)) else {
            self.stats.dropped_unknown += 1;
            return Verdict::Dropped(DropReason::UnknownNode);
        };
        if self.partitioned(gs, gd) {
            self.stats.dropped_partition += 1;
            return Verdict::Dropped(DropReason::Partition);
        }
        let model = *self.model(gs, gd);
        let key = (src as u64) << 32 | dst as u64;
        let seed = self.seed;
        let link = self
            .links
            .entry(key)
            .or_insert_with(|| LinkState::new(seed, key));
        match link.send(&model, now, len) {
            LinkOutcome::Lost => {
                self.stats.dropped_loss += 1;
                Verdict::Dropped(DropReason::Loss)
            }
            LinkOutcome::QueueFull => {
                self.stats.dropped_queue += 1;
                Verdict::Dropped(DropReason::QueueFull)
            }
            LinkOutcome::Release(at) => {
                self.seq += 1;
                self.heap.push(Held {
                    at,
                    seq: self.seq,
                    len,
                    src,
                    dst,
                    payload,
                });
                self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.heap.len() as u64);
                Verdict::Scheduled(at)
            }
        }
    }

    /// The next time something is due: a held packet's release or a plan event.
    pub fn next_deadline(&self) -> Option<Nanos> {
        let packet = self.heap.peek().map(|h| h.at);
        let event = self
            .events_zero
            .and_then(|z| self.events.get(self.next_event).map(|(at, _)| z + at));
        match (packet, event) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Number of packets held.
    pub fn in_flight(&self) -> usize {
        self.heap.len()
    }

    /// The next packet due at or before `now`, in release order; `None` when nothing more is due
    /// (then the events due at `now` have been applied). Events due before a packet's release
    /// are applied first, so a partition that started
    /// while a packet was in flight drops it. Dropped packets come back through `on_drop`.
    pub fn pop_due_with(
        &mut self,
        now: Nanos,
        mut on_drop: impl FnMut(DropReason, P),
    ) -> Option<Released<P>> {
        loop {
            let Some(at) = self.heap.peek().filter(|h| h.at <= now).map(|h| h.at) else {
                self.apply_due_events(now);
                return None;
            };
            self.apply_due_events(at);
            let h = self.heap.pop()?;
            let alive = match (self.group_of(h.src), self.group_of(h.dst)) {
                (Some(gs), Some(gd)) => {
                    if self.partitioned(gs, gd) {
                        self.stats.dropped_partition += 1;
                        on_drop(DropReason::Partition, h.payload);
                        continue;
                    }
                    true
                }
                _ => false,
            };
            if !alive {
                self.stats.dropped_unknown += 1;
                on_drop(DropReason::UnknownNode, h.payload);
                continue;
            }
            self.stats.released += 1;
            self.stats.released_bytes += h.len as u64;
            return Some(Released {
                at: h.at,
                src: h.src,
                dst: h.dst,
                payload: h.payload,
            });
        }
    }

    /// [`Core::pop_due_with`], discarding dropped payloads.
    pub fn pop_due(&mut self, now: Nanos) -> Option<Released<P>> {
        self.pop_due_with(now, |_, _| {})
    }

    /// Applies the plan events due at `now` (also done by `submit` and `pop_due`).
    pub fn advance(&mut self, now: Nanos) {
        self.apply_due_events(now);
    }

    pub fn stats(&self) -> CoreStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
