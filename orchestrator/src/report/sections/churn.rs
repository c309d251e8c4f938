//! "Churn", rendered from run.json's `churn` section alone (so `orchestrator report DIR`
//! reproduces it): the delivery figures under the window rule, per topic, the events by kind
//! and outcome, and peers and topics over time (a short table and a chart).

use crate::chart::{self, ChartError, LineChart, Marker, Point, Series};
use crate::record::RunRecord;
use crate::record::churn_log::Sample;
use crate::record::sections::{ChurnSection, Counts};
use crate::report::doc::{Chart, Doc, Span, Table};
use crate::report::format::CHARTS_DIR;
use std::collections::BTreeMap;

/// Rows of the over-time table.
const TABLE_ROWS: usize = 12;
/// Removed peers named in the text; run.json has them all.
const REMOVED_LISTED: usize = 50;
/// Points per series of the chart.
const CHART_POINTS: usize = 120;

const OUTCOMES: [(&str, &str); 6] = [
    ("ok", "ok"),
    ("partial", "partial"),
    ("failed", "failed"),
    ("skipped", "skipped"),
    ("unfinished", "unfinished"),
    ("not_run", "not run"),
];

/// The section: figures, per topic, events, and peers and topics over time (a table and a
/// chart); nothing when the run had no churn phase.
pub fn add_to(doc: &mut Doc, r: &RunRecord) -> Result<(), ChartError> {
    let Some(c) = &r.sections.churn else {
        return Ok(());
    };
    blocks(c, doc);
    over_time_table(c, doc);
    if let Some(chart) = over_time_chart(c) {
        doc.chart(Chart {
            title: "Peers and topics over time".into(),
            file: format!("{CHARTS_DIR}/churn.svg"),
            svg: chart::line_chart(&chart)?,
        });
    }
    Ok(())
}

fn ratio(c: &Counts) -> String {
    c.ratio().map_or("n/a".into(), |v| format!("{v:.4}"))
}

fn blocks(c: &ChurnSection, doc: &mut Doc) {
    doc.h2("Churn");
    let kept = c.removed.iter().filter(|n| n.has_result).count();
    doc.para(vec![
        Span::text(format!(
            "{} of churn, heartbeat {} ms, delivery window {} ms, peers removed by {}: {} events (",
            humantime::format_duration(std::time::Duration::from_secs_f64(c.duration_s)),
            c.heartbeat_ms,
            c.delivery_window_ms,
            if c.remove_mode == "kill" { "SIGKILL" } else { "SIGTERM" },
            c.events_total
        )),
        Span::Link(c.events_file.clone(), c.events_file.clone()),
        Span::text(format!(
            "); {} peers added, {} removed{}.",
            c.peers_added,
            c.peers_removed,
            if kept < c.removed.len() {
                format!(
                    " ({kept} with their own result; the other {} are counted from the orchestrator's record)",
                    c.removed.len() - kept
                )
            } else {
                String::new()
            }
        )),
    ]);
    if !c.removed.is_empty() {
        let shown: Vec<String> = c
            .removed
            .iter()
            .take(REMOVED_LISTED)
            .map(|n| {
                let kept = match (n.has_result, n.has_snapshot) {
                    (true, _) => "result",
                    (false, true) => "last snapshot",
                    (false, false) => "nothing",
                };
                format!("{} at {:.1} s ({}, kept: {kept})", n.index, n.at_s, n.mode)
            })
            .collect();
        let more = c.removed.len().saturating_sub(REMOVED_LISTED);
        doc.para(vec![Span::text(format!(
            "Removed peers: {}{}.",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more (run.json)")
            } else {
                String::new()
            }
        ))]);
    }
    doc.text(
        "A message counts at a receiver only when the receiver was subscribed to its topic for the whole \
         delivery window after the publish and took part until the window closed; every other delivery is \
         neither a hit nor a miss.",
    );
    let t = &c.total;
    let row = |k: &str, v: Span| vec![Span::text(k), v];
    doc.table(Table {
        head: vec!["figure".into(), "value".into()],
        rows: vec![
            row(
                "delivery ratio under churn",
                Span::Strong(format!(
                    "{} ({} of {} expected)",
                    ratio(t),
                    t.received,
                    t.expected
                )),
            ),
            row("received", Span::text(t.received.to_string())),
            row("missed", Span::text(t.missed.to_string())),
            row(
                "unverifiable (receiver killed: no seen-set)",
                Span::text(t.unverifiable.to_string()),
            ),
            row(
                "delivered outside a full window (not counted)",
                Span::text(t.outside_window.to_string()),
            ),
            row(
                "duplicate deliveries (application, all topics)",
                Span::text(c.duplicates.to_string()),
            ),
            row(
                "messages published",
                Span::text(if c.reconstructed_messages > 0 {
                    format!(
                        "{} ({} known from the orchestrator's record only)",
                        t.messages, c.reconstructed_messages
                    )
                } else {
                    t.messages.to_string()
                }),
            ),
        ],
    });

    per_topic(c, doc);
    events(c, doc);
}

fn per_topic(c: &ChurnSection, doc: &mut Doc) {
    doc.h3("Per topic");
    let mut topics: Vec<_> = c.per_topic.iter().collect();
    topics.sort_by(|a, b| (a.topic.len(), &a.topic).cmp(&(b.topic.len(), &b.topic)));
    doc.table(Table {
        head: [
            "topic",
            "messages",
            "expected",
            "received",
            "missed",
            "ratio",
            "unverifiable",
            "outside window",
        ]
        .map(String::from)
        .to_vec(),
        rows: topics
            .iter()
            .map(|t| {
                let k = &t.counts;
                vec![
                    Span::Code(t.topic.clone()),
                    Span::text(k.messages.to_string()),
                    Span::text(k.expected.to_string()),
                    Span::text(k.received.to_string()),
                    if k.missed > 0 {
                        Span::Strong(k.missed.to_string())
                    } else {
                        Span::text("0")
                    },
                    Span::text(ratio(k)),
                    Span::text(k.unverifiable.to_string()),
                    Span::text(k.outside_window.to_string()),
                ]
            })
            .collect(),
    });
    doc.text("Nodes count duplicates per node, not per topic: the duplicate figure exists for all topics together.");
}

fn events(c: &ChurnSection, doc: &mut Doc) {
    doc.h3("Events");
    let mut head = vec!["event".to_string(), "total".to_string()];
    head.extend(OUTCOMES.iter().map(|(_, h)| h.to_string()));
    doc.table(Table {
        head,
        rows: c
            .events
            .iter()
            .map(|(kind, by)| {
                let total: u64 = by.values().sum();
                let mut row = vec![Span::Code(kind.clone()), Span::text(total.to_string())];
                row.extend(
                    OUTCOMES
                        .iter()
                        .map(|(k, _)| Span::text(by.get(*k).copied().unwrap_or(0).to_string())),
                );
                row
            })
            .collect(),
    });
}

fn over_time_table(c: &ChurnSection, doc: &mut Doc) {
    if c.samples.is_empty() {
        return;
    }
    doc.h3("Peers and topics over time");
    let n = c.samples.len();
    let step = n.div_ceil(TABLE_ROWS).max(1);
    let mut picked: Vec<usize> = (0..n).step_by(step).collect();
    if picked.last() != Some(&(n - 1)) {
        picked.push(n - 1);
    }
    doc.table(Table {
        head: [
            "time",
            "peers",
            "topics",
            "memberships",
            "connections",
            "friendships",
        ]
        .map(String::from)
        .to_vec(),
        rows: picked
            .into_iter()
            .map(|i| {
                let s = &c.samples[i];
                vec![
                    Span::text(format!("{:.0} s", s.t_s)),
                    Span::text(s.peers.to_string()),
                    Span::text(s.topics.to_string()),
                    Span::text(s.memberships.to_string()),
                    Span::text(s.connections.to_string()),
                    Span::text(s.friendships.to_string()),
                ]
            })
            .collect(),
    });
}

fn over_time_chart(c: &ChurnSection) -> Option<LineChart> {
    if c.samples.len() < 2 {
        return None;
    }
    // At most about CHART_POINTS markers per series.
    let step = c.samples.len().div_ceil(CHART_POINTS).max(1);
    let series = |label: &str, color: usize, get: &dyn Fn(&Sample) -> u32| Series {
        label: label.into(),
        color,
        dashed: false,
        marker: Marker::nth(color),
        points: c
            .samples
            .iter()
            .step_by(step)
            .chain(
                c.samples
                    .last()
                    .filter(|_| !(c.samples.len() - 1).is_multiple_of(step)),
            )
            .map(|s| Point {
                x: s.t_s,
                y: get(s) as f64,
                bar: None,
            })
            .collect(),
    };
    let end = c.samples.last().map_or(0.0, |s| s.t_s);
    let ticks: BTreeMap<u64, String> = (0..=5)
        .map(|i| {
            let x = (end * i as f64 / 5.0).round() as u64;
            (x, format!("{x} s"))
        })
        .collect();
    Some(LineChart {
        title: "Peers and topics over time".into(),
        x_label: "time since the churn phase started (s)".into(),
        y_label: "count".into(),
        x_ticks: ticks.into_iter().map(|(x, l)| (x as f64, l)).collect(),
        y_from_zero: true,
        series: vec![
            series("peers", 0, &|s| s.peers),
            series("topics", 1, &|s| s.topics),
            series("topic memberships", 2, &|s| s.memberships),
            series("friendships", 3, &|s| s.friendships),
        ],
        note: Some("one point per heartbeat; memberships are peer-topic pairs".into()),
    })
}
