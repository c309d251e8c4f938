//! The report's "Traces and metrics" section: where the traces are, and the trace ids a person
//! wants to open first (the slowest traced delivery, each failed node's lifecycle).

use super::{MetricsSection, TracesSection};
use crate::record::RunRecord;
use std::fmt::Write;

/// Markdown for report.md; empty when the run recorded neither traces nor metrics.
pub fn markdown(r: &RunRecord) -> String {
    let traces: Option<TracesSection> = r
        .extra
        .get("traces")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let metrics: Option<MetricsSection> = r
        .extra
        .get("metrics")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    if traces.is_none() && metrics.is_none() {
        return String::new();
    }
    let mut o = String::from("\n## Traces and metrics\n\n");
    match &traces {
        Some(t) => {
            let ratio = if t.sample_ratio >= 1.0 {
                "every message".to_string()
            } else {
                format!(
                    "1 message in {:.0} (sample ratio {})",
                    1.0 / t.sample_ratio.max(f64::MIN_POSITIVE),
                    t.sample_ratio
                )
            };
            if t.collector == "embedded" {
                let (spans, n_traces) = t.facts.as_ref().map_or((0, 0), |f| (f.spans, f.traces));
                let _ = writeln!(
                    o,
                    "Traces: {ratio} traced, lifecycles always; the embedded collector received {spans} spans in {n_traces} traces: [traces.json](traces.json) (Jaeger UI → Search → JSON File), [traces.otlp.json](traces.otlp.json) (OTLP/JSON)."
                );
                if let Some(rx) = &t.received
                    && (rx.dropped_spans > 0 || rx.rejected_requests > 0)
                {
                    let _ = writeln!(
                        o,
                        "\n**Incomplete:** {} spans dropped (collector limit), {} requests rejected.",
                        rx.dropped_spans, rx.rejected_requests
                    );
                }
            } else {
                let _ = writeln!(
                    o,
                    "Traces: {ratio} traced, lifecycles always; exported to the external collector at {}.",
                    t.endpoint
                );
            }
            let _ = writeln!(o);
            match &t.slowest_delivery {
                Some(d) => {
                    let msg = match (d.origin, d.seq) {
                        (Some(o), Some(s)) => format!("message {s} of node {o}"),
                        _ => "a message".into(),
                    };
                    let _ = writeln!(
                        o,
                        "- Slowest traced delivery: {:.3} ms, {msg} to {} — trace `{}`",
                        d.latency_ms, d.receiver, d.trace_id
                    );
                }
                None => {
                    let _ = writeln!(o, "- No traced delivery.");
                }
            }
            for n in &t.failed_lifecycles {
                let _ = writeln!(
                    o,
                    "- Node {} ({}, {:?}): lifecycle trace `{}`",
                    n.node, n.service, n.status, n.trace_id
                );
            }
        }
        None => {
            let _ = writeln!(
                o,
                "Traces: off (turn them on with `telemetry.traces: on` or `--traces on`)."
            );
        }
    }
    if let Some(m) = &metrics {
        let _ = writeln!(
            o,
            "\nPrometheus metrics: final exposition in [{}]({}){}.",
            m.file,
            m.file,
            m.url
                .as_ref()
                .map_or(String::new(), |u| format!("; served during the run at {u}"))
        );
        if !m.node_endpoints.is_empty() {
            let _ = writeln!(
                o,
                "Nodes served their own libp2p metrics ({} endpoints, listed in run.json).",
                m.node_endpoints.len()
            );
        }
    }
    o
}
