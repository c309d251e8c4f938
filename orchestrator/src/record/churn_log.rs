//! What a churn phase recorded while it ran ([`ChurnLog`]), the input of the churn figures:
//! the event log — every scheduled event with its arguments, when it was due, when it was
//! applied and how it went, saved as `events.jsonl` (one JSON object per line, in sequence
//! order) and summarised in run.json's `churn` section — the removals, the orchestrator's own
//! record of subscriptions and publishes, and the samples of the live view.

use crate::churn::schedule::{Event, Scheduled};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use testbed_contract::plan::{ChurnPhase, RemoveMode};
use testbed_contract::results::Subscription;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every action was carried out (for a new peer: it listens).
    Ok,
    /// Some actions were carried out, others failed or were skipped.
    Partial,
    /// Nothing was carried out and at least one action failed.
    Failed,
    /// Nothing to do any more (e.g. the peer was removed before its turn).
    Skipped,
    /// Still under way when the phase ended (no acknowledgement yet).
    Unfinished,
    /// The phase stopped (failure, interrupt, timeout) before the event was due.
    NotRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Unfinished => "unfinished",
            Outcome::NotRun => "not_run",
        }
    }
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventRecord {
    pub seq: u64,
    pub tick: u32,
    /// When the event was due, ms since the phase started.
    pub due_ms: f64,
    /// When the executor applied it, ms since the phase started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<f64>,
    /// When its last action finished, ms since the phase started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_ms: Option<f64>,
    #[serde(flatten)]
    pub event: Event,
    pub outcome: Outcome,
    /// Why an action failed or was skipped, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl EventRecord {
    pub fn new(s: &Scheduled, due_ms: f64) -> EventRecord {
        EventRecord {
            seq: s.seq,
            tick: s.tick,
            due_ms,
            at_ms: None,
            done_ms: None,
            event: s.event.clone(),
            outcome: Outcome::NotRun,
            notes: Vec::new(),
        }
    }
}

/// A node stopped on purpose, by the orchestrator's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub at_ns: u64,
    pub mode: RemoveMode,
}

/// A publish command as the orchestrator saw it: sent, acknowledged, how many messages the
/// node reported published. Stands in for the node's own record when the node has none
/// (killed): its `k`-th published message has sequence number `base_seq + k`, published
/// between `sent_ns` and `acked_ns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrchPublish {
    pub topic: String,
    pub sent_ns: u64,
    pub acked_ns: u64,
    pub published: u32,
}

/// The simulation's state at one heartbeat, for the report's charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    pub peers: u32,
    pub topics: u32,
    pub connections: u32,
    pub friendships: u32,
    /// Topic memberships (peer–topic pairs).
    pub memberships: u32,
}

/// Everything the churn phase recorded, for accounting and the results folder.
#[derive(Debug, Clone, Default)]
pub struct ChurnLog {
    pub config: ChurnPhase,
    /// Wall clock (ns since the Unix epoch) when the phase started and ended.
    pub started_ns: u64,
    pub ended_ns: u64,
    pub events: Vec<EventRecord>,
    pub samples: Vec<Sample>,
    pub removals: BTreeMap<u32, Removal>,
    /// The orchestrator's record of each node's subscriptions (conservative: a span opens
    /// when the subscribe was acknowledged and closes when the unsubscribe was sent or the
    /// node removed), used for nodes that left no result.
    pub spans: BTreeMap<u32, Vec<Subscription>>,
    pub publishes: BTreeMap<u32, Vec<OrchPublish>>,
    /// Messages each node had published when the phase started (sequence numbers go on).
    pub base_seq: BTreeMap<u32, u64>,
    /// Peers launched by the phase.
    pub added: Vec<u32>,
    pub last_live: Option<LiveFigures>,
}

impl ChurnLog {
    /// The phase's line in the phases table.
    pub fn phase_note(&self) -> String {
        let n = |o: Outcome| self.events.iter().filter(|e| e.outcome == o).count();
        let mut note = format!(
            "{} events: {} ok, {} partial, {} failed, {} skipped",
            self.events.len(),
            n(Outcome::Ok),
            n(Outcome::Partial),
            n(Outcome::Failed),
            n(Outcome::Skipped)
        );
        for (o, what) in [
            (Outcome::Unfinished, "unfinished"),
            (Outcome::NotRun, "not run"),
        ] {
            if n(o) > 0 {
                note.push_str(&format!(", {} {what}", n(o)));
            }
        }
        note.push_str(&format!(
            "; {} peers added, {} removed",
            self.added.len(),
            self.removals.len()
        ));
        note
    }
}

/// The figures of the live line, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveFigures {
    /// Seconds since the churn phase started.
    pub elapsed_s: f64,
    /// Peers taking part (launched, not removed, not failed).
    pub peers: u32,
    pub peers_added: u32,
    pub peers_removed: u32,
    pub topics: u32,
    /// Open libp2p connections (sum of the nodes' `connected_peers` over 2, from snapshots).
    pub connections: u32,
    pub friendships: u32,
    /// Topic memberships per topic (mock discovery's view).
    pub peers_per_topic: MinMedMax,
    /// Messages published by the simulation so far (acknowledged).
    pub messages: u64,
    /// Distinct deliveries since the phase started (sum over nodes, from snapshots).
    pub received: u64,
    /// Deliveries expected so far: receivers subscribed (by the orchestrator's record) from
    /// each message's publish until its window closed or now.
    pub expected: u64,
    /// `expected − received` when positive: an estimate while running (the report's
    /// figures are exact, from seen-sets).
    pub missed_estimate: u64,
    pub events_applied: u64,
    pub events_failed: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MinMedMax {
    pub min: u32,
    pub median: f64,
    pub max: u32,
}

impl MinMedMax {
    pub fn of(mut v: Vec<u32>) -> MinMedMax {
        if v.is_empty() {
            return MinMedMax::default();
        }
        v.sort_unstable();
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2] as f64
        } else {
            (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
        };
        MinMedMax {
            min: v[0],
            median,
            max: v[n - 1],
        }
    }
}

impl LiveFigures {
    /// The one-line live view.
    pub fn line(&self) -> String {
        let secs = self.elapsed_s.max(0.0).round() as u64;
        let failed = if self.events_failed > 0 {
            format!(" ({} failed)", self.events_failed)
        } else {
            String::new()
        };
        format!(
            "churn {}  peers {} (+{} -{})  topics {}  conns {}  friends {}  peers/topic {}/{}/{}  msgs {}  recv {}  exp {}  miss~{}  events {}{}",
            humantime::format_duration(std::time::Duration::from_secs(secs)),
            self.peers,
            self.peers_added,
            self.peers_removed,
            self.topics,
            self.connections,
            self.friendships,
            self.peers_per_topic.min,
            fmt_median(self.peers_per_topic.median),
            self.peers_per_topic.max,
            self.messages,
            self.received,
            self.expected,
            self.missed_estimate,
            self.events_applied,
            failed
        )
    }
}

fn fmt_median(m: f64) -> String {
    if m.fract() == 0.0 {
        format!("{m:.0}")
    } else {
        format!("{m:.1}")
    }
}

pub fn write_jsonl(path: &Path, events: &[EventRecord]) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for e in events {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

pub fn read_jsonl(path: &Path) -> std::io::Result<Vec<EventRecord>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::churn::schedule::Join;

    #[test]
    fn a_line_reads_back() {
        let s = Scheduled {
            seq: 3,
            tick: 2,
            event: Event::AddTopic {
                topic: "t0".into(),
                joins: vec![Join {
                    peer: 1,
                    connect: vec![0],
                }],
            },
        };
        let mut r = EventRecord::new(&s, 2000.0);
        r.outcome = Outcome::Ok;
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"event\":\"add_topic\""), "{line}");
        assert_eq!(serde_json::from_str::<EventRecord>(&line).unwrap(), r);
    }

    #[test]
    fn line_is_compact() {
        let f = LiveFigures {
            elapsed_s: 80.2,
            peers: 28,
            peers_added: 9,
            peers_removed: 2,
            topics: 17,
            connections: 93,
            friendships: 22,
            peers_per_topic: MinMedMax::of(vec![1, 4, 9, 3]),
            messages: 27,
            received: 102,
            expected: 104,
            missed_estimate: 2,
            events_applied: 412,
            events_failed: 3,
        };
        assert_eq!(
            f.line(),
            "churn 1m 20s  peers 28 (+9 -2)  topics 17  conns 93  friends 22  peers/topic 1/3.5/9  msgs 27  recv 102  exp 104  miss~2  events 412 (3 failed)"
        );
        assert!(f.line().len() < 160);
    }
}
