//! "Clocks": each node's clock offset from the orchestrator's (start and end), whether the
//! latencies were corrected by it, and the bound on the clock error left in a latency.

use crate::record::RunRecord;
use crate::record::sections::{ClockSample, ClockSection, NodeClock};
use crate::report::doc::{Doc, Span, Table};
use crate::report::format::ms;

/// Nodes listed in the table, largest error bound first; run.json keeps every one.
const NODES_SHOWN: usize = 20;

pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    let Some(c) = &r.sections.clock else {
        return;
    };
    doc.h2("Clocks");
    doc.text(headline(c));
    let opt = |v: Option<u64>| v.map_or("n/a".to_string(), |v| ms(v as f64 / 1e6));
    let mut items = vec![
        vec![Span::text(format!(
            "largest |offset|: {}; largest uncertainty: {}; largest drift (end − start): {}",
            opt(c.max_abs_offset_ns),
            opt(c.max_uncertainty_ns),
            opt(c.max_drift_ns),
        ))],
        vec![Span::text(format!(
            "latency error bound (clocks): ± {}{}",
            opt(c.latency_error_bound_ns),
            if c.max_drift_ns.is_none() {
                " (no end measurement: drift not included)"
            } else {
                ""
            }
        ))],
    ];
    if !c.unmeasured.is_empty() {
        items.push(vec![Span::text(format!(
            "not measured (no pong): nodes {}",
            list(&c.unmeasured)
        ))]);
    }
    if !c.uncorrected.is_empty() {
        items.push(vec![Span::text(format!(
            "not corrected (their implementation does not take the clock command), so their latencies are uncorrected: nodes {}",
            list(&c.uncorrected)
        ))]);
    }
    doc.list(items);
    let mut nodes: Vec<&NodeClock> = c.nodes.iter().collect();
    nodes.sort_by_key(|n| std::cmp::Reverse(n.error_bound_ns.unwrap_or(u64::MAX)));
    doc.table(Table {
        head: [
            "node",
            "impl",
            "offset at start",
            "offset at end",
            "corrected by",
            "error bound",
        ]
        .map(String::from)
        .to_vec(),
        rows: nodes.iter().take(NODES_SHOWN).map(|n| row(n)).collect(),
    });
    if c.nodes.len() > NODES_SHOWN {
        doc.text(format!(
            "{} of {} nodes shown (largest error bound first); run.json has every one.",
            NODES_SHOWN,
            c.nodes.len()
        ));
    }
}

fn headline(c: &ClockSection) -> String {
    let how = format!(
        "Offsets are node clock − orchestrator clock, from the fastest of {} pings per node after the handshake and after the last phase (± half its round trip).",
        c.pings
    );
    let what = if c.corrected {
        "Latencies are corrected: each node subtracted its start offset from every time it stamped."
    } else {
        "Latencies are not corrected (the nodes share the orchestrator's clock, or clock_correction is off); the offsets are a check."
    };
    format!("{how} {what} Setting: clock_correction {}.", c.setting)
}

fn row(n: &NodeClock) -> Vec<Span> {
    let sample = |s: Option<ClockSample>| {
        s.map_or("n/a".to_string(), |s| {
            format!(
                "{} ± {}",
                ms(s.offset_ns as f64 / 1e6),
                ms(s.uncertainty_ns as f64 / 1e6)
            )
        })
    };
    vec![
        Span::text(n.index.to_string()),
        Span::text(n.implementation.clone()),
        Span::text(sample(n.start)),
        Span::text(sample(n.end)),
        Span::text(n.applied_ns.map_or("—".into(), |a| ms(a as f64 / 1e6))),
        Span::text(
            n.error_bound_ns
                .map_or("n/a".into(), |b| format!("± {}", ms(b as f64 / 1e6))),
        ),
    ]
}

fn list(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}
