//! "Network": the configured profile of every group pair beside what deliveries measured,
//! the timed events, and the shaper's counters (network emulation only).

use crate::record::RunRecord;
use crate::record::sections::NetworkLink;
use crate::report::doc::{Doc, Span, Table};
use crate::report::format::ms;

pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    let Some(net) = &r.sections.network else {
        return;
    };
    doc.h2("Network");
    doc.text(
        "Configured one-way profile per direction, and what deliveries measured (a delivery may take several hops).",
    );
    doc.table(Table {
        head: [
            "from → to",
            "latency",
            "jitter",
            "loss",
            "bandwidth",
            "delivered / expected",
            "measured p50",
            "measured p99",
        ]
        .map(String::from)
        .to_vec(),
        rows: net.links.iter().map(|l| link_row(r, l)).collect(),
    });
    let events = &net.section.events;
    if !events.is_empty() {
        doc.text(format!(
            "Timed events (their clock started {} after the first launch):",
            ms(net.events_zero_ms)
        ));
        doc.list(
            events
                .iter()
                .map(|e| vec![Span::Code(json_text(e))])
                .collect(),
        );
    }
    if let Some(stats) = &r.sections.shaper {
        doc.para(vec![
            Span::text("Shaper counters: "),
            Span::Code(json_text(stats)),
        ]);
    }
}

fn link_row(r: &RunRecord, l: &NetworkLink) -> Vec<Span> {
    let p = &l.profile;
    let pair = r
        .group_pairs
        .iter()
        .find(|g| g.origin_group == l.from && g.receiver_group == l.to);
    let (delivered, p50, p99) = pair.map_or(
        ("n/a".to_string(), "n/a".to_string(), "n/a".to_string()),
        |g| {
            (
                format!("{} / {}", g.delivered, g.expected),
                g.latency.map_or("n/a".into(), |l| ms(l.p50_ms)),
                g.latency.map_or("n/a".into(), |l| ms(l.p99_ms)),
            )
        },
    );
    [
        format!("{} → {}", l.from, l.to),
        humantime::format_duration(p.latency).to_string(),
        humantime::format_duration(p.jitter).to_string(),
        format!("{}%", json_text(&p.loss)),
        p.bandwidth.to_string(),
        delivered,
        p50,
        p99,
    ]
    .into_iter()
    .map(Span::text)
    .collect()
}

/// A value as compact JSON with sorted keys, as run.json has it.
fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v).map_or_else(|e| format!("({e})"), |v| v.to_string())
}
