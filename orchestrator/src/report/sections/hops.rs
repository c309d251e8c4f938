//! Hops per first delivery beside the latency, in the "Summary": the mean and the histogram,
//! with what could not be counted said on the same row, so "one-hop latency × hops" can be
//! read off the report.

use crate::record::RunRecord;
use crate::report::doc::Span;

/// The summary row: figure, value, samples.
pub fn row(r: &RunRecord) -> Option<[Span; 3]> {
    let h = r.sections.hops.as_ref()?;
    let value = match (h.mean_hops, h.max_hops) {
        (Some(mean), Some(max)) => {
            let hist = h
                .histogram
                .iter()
                .map(|c| format!("{}: {}", c.hops, c.deliveries))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{mean:.2} / {max} (hops: deliveries — {hist})")
        }
        _ => "n/a (no delivery traced back to its publisher)".to_string(),
    };
    let mut samples = vec![format!("{} deliveries", h.deliveries)];
    if h.unknown_source > 0 {
        samples.push(format!("{} from peers outside the fleet", h.unknown_source));
    }
    if h.broken_chain > 0 {
        samples.push(format!(
            "{} whose chain to the publisher is incomplete",
            h.broken_chain
        ));
    }
    if !h.capped.is_empty() {
        samples.push(format!(
            "{} left out by {} nodes whose list was full",
            h.dropped,
            h.capped.len()
        ));
    }
    if !h.not_reporting.is_empty() {
        samples.push(format!(
            "{} receivers do not report sources",
            h.not_reporting.len()
        ));
    }
    Some([
        Span::text("hops per first delivery (publisher = 0), mean / max"),
        Span::text(value),
        Span::text(samples.join("; ")),
    ])
}
