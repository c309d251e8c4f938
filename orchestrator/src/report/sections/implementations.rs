//! "By implementation": memory, CPU and counts per implementation, and delivery and
//! latency per (publisher implementation → receiver implementation), from run.json's
//! `implementations` section.

use crate::record::RunRecord;
use crate::record::sections::ByImplementation;
use crate::report::doc::{Doc, Span, Table};
use crate::report::format::{mib, ms};

/// The section (only when more than one implementation ran: the figures are stored only
/// then).
pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    let Some(b) = &r.sections.implementations else {
        return;
    };
    doc.h2("By implementation");
    doc.table(Table {
        head: [
            "implementation",
            "nodes",
            "version",
            "peak RSS per node, median / max",
            "final RSS median",
            "CPU per node, median / max",
            "published",
            "received",
            "duplicates (app / router)",
        ]
        .map(String::from)
        .to_vec(),
        rows: b
            .implementations
            .iter()
            .map(|f| {
                let nodes = Span::text(f.nodes.to_string());
                vec![
                    Span::text(f.label.clone()),
                    if f.nodes_failed > 0 {
                        Span::Strong(format!("{} ({} failed)", f.nodes, f.nodes_failed))
                    } else {
                        nodes
                    },
                    Span::text(f.version.as_deref().unwrap_or("n/a")),
                    Span::text(format!(
                        "{} / {}",
                        mib(f.peak_rss_bytes.median),
                        mib(f.peak_rss_bytes.max)
                    )),
                    Span::text(mib(f.final_rss_bytes.median)),
                    Span::text(format!("{:.3} s / {:.3} s", f.cpu_s.median, f.cpu_s.max)),
                    Span::text(f.messages_published.to_string()),
                    Span::text(f.received.to_string()),
                    Span::text(format!(
                        "{} / {}",
                        f.duplicates,
                        f.router_duplicates.map_or("n/a".into(), |d| d.to_string())
                    )),
                ]
            })
            .collect(),
    });

    delivery(b, doc);
    latency(b, doc);
}

/// Delivery ratio per (publisher, receiver) as a matrix.
fn delivery(b: &ByImplementation, doc: &mut Doc) {
    let labels: Vec<&str> = b.implementations.iter().map(|f| f.label.as_str()).collect();
    let pair = |p: &str, r: &str| b.pairs.iter().find(|x| x.publisher == p && x.receiver == r);
    doc.h3("Delivery (publisher ↓, receiver →)");
    let mut head = vec!["publisher / receiver".to_string()];
    head.extend(labels.iter().map(|l| l.to_string()));
    doc.table(Table {
        head,
        rows: labels
            .iter()
            .map(|p| {
                let mut row = vec![Span::text(*p)];
                row.extend(labels.iter().map(|r| match pair(p, r) {
                    Some(x) if x.expected > 0 => {
                        let ratio = format!("{:.4}", x.delivered as f64 / x.expected as f64);
                        let counts = format!(" ({} / {})", x.delivered, x.expected);
                        // A shortfall stands out; a Table cell holds one span.
                        if x.delivered < x.expected {
                            Span::Strong(format!("{ratio}{counts}"))
                        } else {
                            Span::text(format!("{ratio}{counts}"))
                        }
                    }
                    _ => Span::text("–"),
                }));
                row
            })
            .collect(),
    });
}

fn latency(b: &ByImplementation, doc: &mut Doc) {
    doc.h3("Latency (publisher → receiver)");
    doc.table(Table {
        head: [
            "publisher → receiver",
            "p50",
            "p90",
            "p99",
            "max",
            "samples",
        ]
        .map(String::from)
        .to_vec(),
        rows: b
            .pairs
            .iter()
            .map(|x| {
                let mut row = vec![Span::text(format!("{} → {}", x.publisher, x.receiver))];
                match &x.latency {
                    Some(l) => row.extend(
                        [l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms]
                            .map(|v| Span::text(ms(v)))
                            .into_iter()
                            .chain([Span::text(l.count.to_string())]),
                    ),
                    None => row.extend(["n/a", "n/a", "n/a", "n/a", "0"].map(Span::text)),
                }
                row
            })
            .collect(),
    });
}
