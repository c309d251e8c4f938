//! "Lock-step publishing", rendered from run.json's `lockstep` section: per phase, each
//! message's time to full delivery (send to the last subscriber's receive, both measured by
//! the nodes) as percentiles, and the slowest message named — or the first one that did
//! not reach everyone, with the nodes it lacked.

use crate::record::RunRecord;
use crate::record::sections::LockstepMessage;
use crate::report::doc::{Doc, Span, Table};
use crate::report::format::ms;

pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    let Some(l) = &r.sections.lockstep else {
        return;
    };
    doc.h2("Lock-step publishing");
    doc.text(
        "One message in flight at a time: the next is published when every subscriber reported the previous one. Time to full delivery: from the publisher's send time to the last subscriber's receive time, both as the nodes measured them; exact percentiles over the messages.",
    );
    let head = [
        "phase", "topic", "messages", "complete", "p50", "p90", "p99", "max", "mean",
    ];
    let rows = l
        .phases
        .iter()
        .map(|p| {
            let f = |v: Option<f64>| Span::text(v.map_or("n/a".into(), ms));
            let d = p.full_delivery.as_ref();
            vec![
                Span::text(p.phase.to_string()),
                Span::text(p.topic.clone()),
                Span::text(p.planned.to_string()),
                if p.complete == p.planned {
                    Span::text(p.complete.to_string())
                } else {
                    Span::Strong(p.complete.to_string())
                },
                f(d.map(|d| d.p50_ms)),
                f(d.map(|d| d.p90_ms)),
                f(d.map(|d| d.p99_ms)),
                f(d.map(|d| d.max_ms)),
                f(d.map(|d| d.mean_ms)),
            ]
        })
        .collect();
    doc.table(Table {
        head: head.map(String::from).to_vec(),
        rows,
    });
    let items: Vec<Vec<Span>> = l
        .phases
        .iter()
        .filter_map(|p| Some((p.phase, p.slowest.as_ref()?)))
        .map(|(phase, m)| vec![Span::text(format!("phase {phase}: {}", describe(m)))])
        .collect();
    if !items.is_empty() {
        doc.list(items);
    }
}

fn describe(m: &LockstepMessage) -> String {
    let id = format!("message {} of node {}", m.seq, m.origin);
    match m.full_delivery_ms {
        Some(t) => format!(
            "slowest: {id}, {} to reach all {} subscribers",
            ms(t),
            m.receivers
        ),
        None if !m.missing.is_empty() => format!(
            "{id} reached {} of {} subscribers; never reported by node(s) {}",
            m.delivered.len(),
            m.receivers,
            m.missing
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!(
            "{id}: its send time is unknown (no result from node {})",
            m.origin
        ),
    }
}
