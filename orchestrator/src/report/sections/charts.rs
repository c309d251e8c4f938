//! "Charts": the latency distribution of every delivery (percentiles of the fleet's merged
//! HDR histograms) and each node's lifecycle as a timeline (from the state changes in
//! run.json). report.html embeds them; report.md shows the SVG files beside it.

use crate::chart::{self, ChartError, LineChart, Marker, Point, Series, Timeline};
use crate::record::RunRecord;
use crate::report::doc::{Chart, Doc};
use crate::report::format::CHARTS_DIR;
use testbed_contract::histogram;
use testbed_contract::results::NodeState;

/// Nodes drawn in the timeline; a larger fleet shows its first ones.
const TIMELINE_NODES: usize = 200;

const QUANTILES: &[(f64, &str)] = &[
    (0.0, "min"),
    (0.10, "p10"),
    (0.25, "p25"),
    (0.50, "p50"),
    (0.75, "p75"),
    (0.90, "p90"),
    (0.95, "p95"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (1.0, "max"),
];

const STATES: &[NodeState] = &[
    NodeState::Starting,
    NodeState::Listening,
    NodeState::Connected,
    NodeState::Subscribed,
    NodeState::Ready,
    NodeState::Running,
    NodeState::Draining,
    NodeState::Done,
    NodeState::Failed,
];

pub fn add_to(doc: &mut Doc, r: &RunRecord) -> Result<(), ChartError> {
    let latency = latency_chart(r);
    let lifecycle = lifecycle(r);
    if latency.is_none() && lifecycle.is_none() {
        return Ok(());
    }
    doc.h2("Charts");
    if let Some(c) = latency {
        doc.chart(Chart {
            title: "Delivery latency distribution".into(),
            file: format!("{CHARTS_DIR}/latency.svg"),
            svg: chart::line_chart(&c)?,
        });
    }
    if let Some(t) = lifecycle {
        doc.chart(Chart {
            title: "Node lifecycle".into(),
            file: format!("{CHARTS_DIR}/lifecycle.svg"),
            svg: chart::timeline(&t)?,
        });
    }
    Ok(())
}

/// Percentiles of the merged latency histograms of every node.
fn latency_chart(r: &RunRecord) -> Option<LineChart> {
    let mut all = histogram::new_latency_histogram();
    for n in &r.nodes {
        for l in n.result.iter().flat_map(|x| &x.latency) {
            if let Ok(h) = histogram::decode(&l.hdr) {
                let _ = all.add(&h);
            }
        }
    }
    if all.is_empty() {
        return None;
    }
    let points = QUANTILES
        .iter()
        .enumerate()
        .map(|(i, (q, _))| {
            let us = match *q {
                0.0 => all.min(),
                1.0 => all.max(),
                q => all.value_at_quantile(q),
            };
            Point {
                x: i as f64,
                y: us as f64 / 1e3,
                bar: None,
            }
        })
        .collect();
    Some(LineChart {
        title: format!("Delivery latency, {} deliveries", all.len()),
        x_label: "percentile".into(),
        y_label: "latency (ms)".into(),
        x_ticks: QUANTILES
            .iter()
            .enumerate()
            .map(|(i, (_, l))| (i as f64, l.to_string()))
            .collect(),
        y_from_zero: true,
        series: vec![Series {
            label: "all deliveries".into(),
            color: 0,
            dashed: false,
            marker: Marker::Circle,
            points,
        }],
        note: Some("merged HDR histograms; of every receiver".into()),
    })
}

/// One row per node, one span per state, from the first state change in the fleet.
fn lifecycle(r: &RunRecord) -> Option<Timeline> {
    let t0 = r
        .nodes
        .iter()
        .flat_map(|n| n.timeline.iter().map(|c| c.at_ns))
        .min()?;
    let end = r
        .nodes
        .iter()
        .flat_map(|n| n.timeline.iter().map(|c| c.at_ns))
        .max()?;
    let ms_of = |ns: u64| ns.saturating_sub(t0) as f64 / 1e6;
    let shown: Vec<_> = r.nodes.iter().take(TIMELINE_NODES).collect();
    let mut spans = Vec::new();
    for (row, n) in shown.iter().enumerate() {
        for (i, c) in n.timeline.iter().enumerate() {
            let until = n.timeline.get(i + 1).map_or(
                // The last state lasts until the fleet's last event, except a final one.
                if matches!(c.state, NodeState::Done | NodeState::Failed) {
                    c.at_ns
                } else {
                    end
                },
                |next| next.at_ns,
            );
            let kind = STATES.iter().position(|s| *s == c.state).unwrap_or(0);
            spans.push((row, ms_of(c.at_ns), ms_of(until.max(c.at_ns)), kind));
        }
    }
    let more = r.nodes.len().saturating_sub(TIMELINE_NODES);
    Some(Timeline {
        title: if more > 0 {
            format!(
                "Node lifecycle (first {TIMELINE_NODES} of {} nodes)",
                r.nodes.len()
            )
        } else {
            "Node lifecycle".into()
        },
        x_label: "time since the first node started (ms)".into(),
        rows: shown.iter().map(|n| n.index.to_string()).collect(),
        spans,
        kinds: STATES.iter().map(|s| s.as_str().to_string()).collect(),
    })
}
