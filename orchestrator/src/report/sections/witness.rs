//! "Witness", rendered from run.json's `witness` section: each listen-only witness's
//! distinct count against the messages the fleet published, its deliveries, and the
//! verdict. The fleet's own figures above never include a witness.

use crate::record::RunRecord;
use crate::report::doc::{Doc, Span, Table};

pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    let Some(w) = &r.sections.witness else {
        return;
    };
    doc.h2("Witness");
    doc.text(format!(
        "Listen-only subscribers outside the fleet: each joined every topic the fleet subscribes to, dialled a few fleet nodes, published nothing and counted what it received. Distinct: messages in its seen-set; deliveries: distinct plus duplicates; it agrees when it received exactly the {} messages the fleet's publishers recorded and its own counter says the same. No figure of the fleet counts the witnesses.",
        w.messages_published
    ));
    let opt = |v: Option<u64>| v.map_or("n/a".into(), |v| v.to_string());
    let rows = w
        .witnesses
        .iter()
        .map(|f| {
            let peers: Vec<String> = f.peers.iter().map(u32::to_string).collect();
            vec![
                Span::text(f.index.to_string()),
                Span::text(f.implementation.clone()),
                Span::text(peers.join(", ")),
                Span::text(format!("{} / {}", opt(f.distinct), w.messages_published)),
                Span::text(opt(f.deliveries)),
                Span::text(f.missing.to_string()),
                Span::text(f.unknown.to_string()),
                if f.agrees {
                    Span::text(f.verdict.clone())
                } else {
                    Span::Strong(f.verdict.clone())
                },
            ]
        })
        .collect();
    let head = [
        "node",
        "implementation",
        "dialled",
        "distinct / published",
        "deliveries",
        "missing",
        "not published",
        "verdict",
    ];
    doc.table(Table {
        head: head.map(String::from).to_vec(),
        rows,
    });
}
