//! The churn event log: every scheduled event with its arguments, when it was due, when it
//! was applied and how it went. Saved as `events.jsonl` in the results folder (one JSON
//! object per line, in sequence order) and summarised in run.json (`extra.churn`).

use super::schedule::{Event, Scheduled};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

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

/// Progress of one event's actions while the phase runs.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub actions: u32,
    pub ok: u32,
    pub failed: u32,
    pub skipped: u32,
}

impl Tally {
    pub fn settled(&self) -> bool {
        self.ok + self.failed + self.skipped >= self.actions
    }

    pub fn outcome(&self) -> Outcome {
        if !self.settled() {
            Outcome::Unfinished
        } else if self.ok == self.actions {
            Outcome::Ok
        } else if self.ok > 0 {
            Outcome::Partial
        } else if self.failed > 0 {
            Outcome::Failed
        } else {
            Outcome::Skipped
        }
    }
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

/// Per event kind: how many were scheduled and how they went.
pub fn counts_by_kind(events: &[EventRecord]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for e in events {
        *out.entry(e.event.kind().as_str().to_string())
            .or_default()
            .entry(e.outcome.as_str().to_string())
            .or_default() += 1;
    }
    out
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
    fn outcomes() {
        let t = |actions, ok, failed, skipped| {
            Tally {
                actions,
                ok,
                failed,
                skipped,
            }
            .outcome()
        };
        assert_eq!(t(0, 0, 0, 0), Outcome::Ok);
        assert_eq!(t(2, 2, 0, 0), Outcome::Ok);
        assert_eq!(t(2, 1, 1, 0), Outcome::Partial);
        assert_eq!(t(2, 0, 1, 1), Outcome::Failed);
        assert_eq!(t(2, 0, 0, 2), Outcome::Skipped);
        assert_eq!(t(2, 1, 0, 0), Outcome::Unfinished);
    }
}
