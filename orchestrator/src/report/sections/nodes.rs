//! "Nodes that did not finish normally": each with its status, last state, why, and its log.

use crate::record::{NodeStatus, RunRecord};
use crate::report::doc::{Doc, Span, Table};

/// Nodes listed; run.json has them all.
const LISTED: usize = 100;

pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    let failed: Vec<_> = r
        .nodes
        .iter()
        // Peers removed on purpose (churn) are listed in the churn section.
        .filter(|n| !matches!(n.status, NodeStatus::Ok | NodeStatus::Removed))
        .collect();
    if failed.is_empty() {
        return;
    }
    doc.h2("Nodes that did not finish normally");
    doc.table(Table {
        head: ["node", "group", "status", "last state", "why", "log"]
            .map(String::from)
            .to_vec(),
        rows: failed
            .iter()
            .take(LISTED)
            .map(|n| {
                vec![
                    Span::text(n.index.to_string()),
                    Span::text(n.group.clone()),
                    Span::text(format!("{:?}", n.status)),
                    Span::text(n.last_state.as_str()),
                    Span::text(n.failure.clone().unwrap_or_default()),
                    Span::Link(n.log.clone(), n.log.clone()),
                ]
            })
            .collect(),
    });
    if failed.len() > LISTED {
        doc.text(format!(
            "… and {} more (see run.json).",
            failed.len() - LISTED
        ));
    }
}
