//! The nodes' event-loop lag beside the latency, in the "Summary": the fleet's spread of each
//! node's p99 over its run, and the largest lag in the measurement window with the node that
//! had it, so a stalled or starved node is named where its latencies are read.

use crate::record::RunRecord;
use crate::record::sections::LoopLagSection;
use crate::report::doc::Span;
use crate::report::format::ms;

fn window_name(l: &LoopLagSection) -> &'static str {
    if l.window == "publish_to_settle" {
        "publish window (first publish → settled)"
    } else {
        "run"
    }
}

fn not_measured(l: &LoopLagSection) -> String {
    if l.not_measured.is_empty() {
        String::new()
    } else {
        format!(
            "; {} not measured (their implementation does not report it, or no result)",
            l.not_measured.len()
        )
    }
}

/// The summary rows: figure, value, samples.
pub fn rows(r: &RunRecord) -> Vec<[Span; 3]> {
    let Some(l) = r.sections.loop_lag.as_ref() else {
        return Vec::new();
    };
    let p = &l.node_p99;
    let mut rows = vec![[
        Span::text(format!(
            "event-loop lag ({} ms probe), each node's p99 over its run: fleet p50 / p99 / max",
            l.interval_ms
        )),
        Span::text(format!(
            "{} / {} / {}",
            ms(p.p50_ms),
            ms(p.p99_ms),
            ms(p.max_ms)
        )),
        Span::text(format!("{} nodes{}", p.nodes, not_measured(l))),
    ]];
    let w = &l.worst;
    let largest = w.window_max_ms.unwrap_or(w.max_ms);
    let spread = l.node_window_max.as_ref().map_or(String::new(), |s| {
        format!(
            "; each node's largest: fleet p50 {} / p99 {}",
            ms(s.p50_ms),
            ms(s.p99_ms)
        )
    });
    rows.push([
        Span::text(format!("largest event-loop lag in the {}", window_name(l))),
        Span::Seq(vec![
            Span::Strong(ms(largest)),
            Span::text(format!(" at node {} (group {}){spread}", w.index, w.group)),
        ]),
        Span::text(format!(
            "{} nodes, ticks due in the whole seconds overlapping the window",
            l.node_window_max.map_or(0, |s| s.nodes)
        )),
    ]);
    rows
}
