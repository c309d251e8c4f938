//! "Traces and metrics": where the traces are, and the trace ids a person wants to open
//! first (the slowest traced delivery, each failed node's lifecycle); where the metrics are.

use crate::record::RunRecord;
use crate::record::sections::{MetricsSection, TracesSection};
use crate::report::doc::{Doc, Span};

/// The section; nothing when the run recorded neither traces nor metrics.
pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    let (traces, metrics) = (&r.sections.traces, &r.sections.metrics);
    if traces.is_none() && metrics.is_none() {
        return;
    }
    doc.h2("Traces and metrics");
    match traces {
        Some(t) => traces_part(t, doc),
        None => doc.para(vec![
            Span::text("Traces: off (turn them on with "),
            Span::Code("telemetry.traces: on".into()),
            Span::text(" or "),
            Span::Code("--traces on".into()),
            Span::text(")."),
        ]),
    }
    if let Some(m) = metrics {
        metrics_part(m, doc);
    }
}

fn traces_part(t: &TracesSection, doc: &mut Doc) {
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
        doc.para(vec![
            Span::text(format!(
                "Traces: {ratio} traced, lifecycles always; the embedded collector received {spans} spans in {n_traces} traces: "
            )),
            Span::Link("traces.json".into(), "traces.json".into()),
            Span::text(" (Jaeger UI → Search → JSON File), "),
            Span::Link("traces.otlp.json".into(), "traces.otlp.json".into()),
            Span::text(" (OTLP/JSON)."),
        ]);
        if let Some(rx) = &t.received
            && (rx.dropped_spans > 0 || rx.rejected_requests > 0)
        {
            doc.para(vec![
                Span::Strong("Incomplete:".into()),
                Span::text(format!(
                    " {} spans dropped (collector limit), {} requests rejected.",
                    rx.dropped_spans, rx.rejected_requests
                )),
            ]);
        }
    } else {
        doc.text(format!(
            "Traces: {ratio} traced, lifecycles always; exported to the external collector at {}.",
            t.endpoint
        ));
    }
    let mut items = Vec::new();
    match &t.slowest_delivery {
        Some(d) => {
            let msg = match (d.origin, d.seq) {
                (Some(o), Some(s)) => format!("message {s} of node {o}"),
                _ => "a message".into(),
            };
            items.push(vec![
                Span::text(format!(
                    "Slowest traced delivery: {:.3} ms, {msg} to {} — trace ",
                    d.latency_ms, d.receiver
                )),
                Span::Code(d.trace_id.clone()),
            ]);
        }
        None => items.push(vec![Span::text("No traced delivery.")]),
    }
    for n in &t.failed_lifecycles {
        items.push(vec![
            Span::text(format!(
                "Node {} ({}, {:?}): lifecycle trace ",
                n.node, n.service, n.status
            )),
            Span::Code(n.trace_id.clone()),
        ]);
    }
    doc.list(items);
}

fn metrics_part(m: &MetricsSection, doc: &mut Doc) {
    let mut spans = vec![
        Span::text("Prometheus metrics: final exposition in "),
        Span::Link(m.file.clone(), m.file.clone()),
    ];
    if let Some(u) = &m.url {
        spans.push(Span::text(format!("; served during the run at {u}")));
    }
    spans.push(Span::text("."));
    doc.para(spans);
    if !m.node_endpoints.is_empty() {
        doc.text(format!(
            "Nodes served their own libp2p metrics ({} endpoints, listed in run.json).",
            m.node_endpoints.len()
        ));
    }
}
