//! "Phases": every phase of the workload as it ran.

use crate::record::RunRecord;
use crate::report::doc::{Doc, Span, Table};
use crate::report::format::ms;

pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    doc.h2("Phases");
    doc.table(Table {
        head: ["phase", "started", "duration", "result", "note"]
            .map(String::from)
            .to_vec(),
        rows: r
            .phases
            .iter()
            .map(|p| {
                vec![
                    Span::text(p.kind.clone()),
                    Span::text(ms(p.started_ms)),
                    Span::text(ms(p.duration_ms)),
                    if p.ok {
                        Span::text("ok")
                    } else {
                        Span::Strong("failed".into())
                    },
                    Span::text(p.note.clone().unwrap_or_default()),
                ]
            })
            .collect(),
    });
}
