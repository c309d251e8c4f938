//! The host's load beside the latency, in the "Summary": a row with the measurement
//! window's busy share and run queue, and — when the host was saturated — the plain
//! sentence, above the figures, that the latencies describe this machine, not the protocol.

use crate::record::RunRecord;
use crate::record::sections::HostLoadSection;
use crate::report::doc::{Doc, Span};

fn pct(v: f64) -> String {
    format!("{:.0} %", v * 100.0)
}

fn window_name(h: &HostLoadSection) -> &'static str {
    if h.window == "publish_to_settle" {
        "publish window (first publish → last delivery counted)"
    } else {
        "run"
    }
}

/// The summary row: figure, value, samples.
pub fn row(r: &RunRecord) -> Option<[Span; 3]> {
    let h = r.sections.host_load.as_ref()?;
    Some([
        Span::text(format!("host CPU during the {}", window_name(h))),
        Span::text(format!(
            "{} busy on average; ≥ {} busy for {} of it; run queue mean {:.1} / max {} on {} CPUs",
            pct(h.busy_share_mean),
            pct(h.busy_threshold),
            pct(h.saturated_share),
            h.run_queue_mean,
            h.run_queue_max,
            h.cpus
        )),
        Span::text(format!(
            "{} intervals of {:.0} ms",
            h.window_samples, h.sample_period_ms
        )),
    ])
}

/// Above the summary table: the verdict, in words, when the host was saturated.
pub fn add_verdict(doc: &mut Doc, r: &RunRecord) {
    let Some(h) = r.sections.host_load.as_ref().filter(|h| h.host_saturated) else {
        return;
    };
    doc.para(vec![
        Span::Strong("The host was saturated:".into()),
        Span::text(format!(
            " host CPU ≥ {} busy for {} of the {}. These latencies are bounded by this machine, \
             not by the protocol; run fewer nodes or a lighter workload \
             (`orchestrator capacity` finds the largest fleet this machine runs unsaturated).",
            pct(h.busy_threshold),
            pct(h.saturated_share),
            window_name(h)
        )),
    ]);
}
