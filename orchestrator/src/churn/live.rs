//! The live view of a churn phase: one compact line on stdout every `live_every`, and the
//! same figures as a [`LiveFigures`] snapshot that other parts of the orchestrator (the
//! Prometheus `/metrics` endpoint) read from [`board`].
//!
//! ```text
//! churn 1m20s  peers 28 (+9 −2)  topics 17  conns 93  friends 22  peers/topic 1/4/9  msgs 27  recv 102  exp 104  miss~2  events 412 (3 failed)
//! ```

use serde::{Deserialize, Serialize};
use std::sync::{OnceLock, RwLock};

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

impl LiveFigures {
    /// The figures as gauges of the run's Prometheus endpoint (`pubsub_testbed_churn_*`).
    pub fn export(&self, m: &crate::telemetry::metrics::LiveMetrics) {
        let g = |name: &str, help: &str, v: f64| m.set_gauge(name, help, &[], v);
        g(
            "churn_peers",
            "Churn: peers taking part (launched, not removed, not failed).",
            self.peers as f64,
        );
        g(
            "churn_peers_added",
            "Churn: peers launched by the churn phase so far.",
            self.peers_added as f64,
        );
        g(
            "churn_peers_removed",
            "Churn: peers removed by the churn phase so far.",
            self.peers_removed as f64,
        );
        g(
            "churn_topics",
            "Churn: topics that exist.",
            self.topics as f64,
        );
        g(
            "churn_connections",
            "Churn: open connections (from the nodes' snapshots).",
            self.connections as f64,
        );
        g(
            "churn_friendships",
            "Churn: friendships.",
            self.friendships as f64,
        );
        let ppt = "Churn: peers per topic.";
        for (stat, v) in [
            ("min", self.peers_per_topic.min as f64),
            ("median", self.peers_per_topic.median),
            ("max", self.peers_per_topic.max as f64),
        ] {
            m.set_gauge("churn_peers_per_topic", ppt, &[("stat", stat)], v);
        }
        g(
            "churn_messages",
            "Churn: messages published by the churn phase.",
            self.messages as f64,
        );
        g(
            "churn_received",
            "Churn: distinct deliveries since the phase started.",
            self.received as f64,
        );
        g(
            "churn_expected",
            "Churn: deliveries expected so far (orchestrator's record; estimate).",
            self.expected as f64,
        );
        g(
            "churn_missed_estimate",
            "Churn: expected minus received while running (estimate; the report is exact).",
            self.missed_estimate as f64,
        );
        g(
            "churn_events_applied",
            "Churn: events applied.",
            self.events_applied as f64,
        );
        g(
            "churn_events_failed",
            "Churn: events that failed or partly failed.",
            self.events_failed as f64,
        );
    }
}

/// Where the latest figures of the running churn phase are published.
#[derive(Debug, Default)]
pub struct LiveBoard {
    latest: RwLock<Option<LiveFigures>>,
}

impl LiveBoard {
    /// The latest figures, or None when no churn phase has run in this process.
    pub fn latest(&self) -> Option<LiveFigures> {
        self.latest.read().map(|g| g.clone()).unwrap_or(None)
    }

    pub fn publish(&self, f: LiveFigures) {
        if let Ok(mut g) = self.latest.write() {
            *g = Some(f);
        }
    }
}

/// The process-wide board: a churn phase updates it every heartbeat; a metrics endpoint
/// reads [`LiveBoard::latest`]. (With several runs in one process, the last writer wins.)
pub fn board() -> &'static LiveBoard {
    static BOARD: OnceLock<LiveBoard> = OnceLock::new();
    BOARD.get_or_init(LiveBoard::default)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        board().publish(f.clone());
        assert_eq!(board().latest(), Some(f));
    }
}
