//! "By group": delivery and latency per (origin group → receiver group), when the plan has
//! more than one pair.

use crate::record::RunRecord;
use crate::report::doc::{Doc, Span, Table};
use crate::report::format::ms;

pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    if r.group_pairs.len() <= 1 {
        return;
    }
    doc.h2("By group (origin → receiver)");
    doc.table(Table {
        head: [
            "origin → receiver",
            "delivered / expected",
            "p50",
            "p99",
            "samples",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .group_pairs
            .iter()
            .map(|g| {
                let (p50, p99, n) = g.latency.map_or(("n/a".into(), "n/a".into(), 0), |l| {
                    (ms(l.p50_ms), ms(l.p99_ms), l.count)
                });
                vec![
                    Span::text(format!("{} → {}", g.origin_group, g.receiver_group)),
                    Span::text(format!("{} / {}", g.delivered, g.expected)),
                    Span::text(p50),
                    Span::text(p99),
                    Span::text(n.to_string()),
                ]
            })
            .collect(),
    });
}
