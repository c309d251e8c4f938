//! "Delivery over time": expected and delivered by publish time, so a partition or a churn
//! burst shows as a dip.

use crate::record::RunRecord;
use crate::report::doc::{Doc, Span, Table};

pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    let buckets = &r.summary.delivery_over_time;
    if buckets.len() <= 1 {
        return;
    }
    doc.h2("Delivery over time");
    doc.text("By publish time, seconds since the run started.");
    doc.table(Table {
        head: ["published", "delivered / expected", "ratio"]
            .map(String::from)
            .to_vec(),
        rows: buckets
            .iter()
            .map(|b| {
                vec![
                    Span::text(format!("{:.0}–{:.0} s", b.from_s, b.to_s)),
                    Span::text(format!("{} / {}", b.delivered, b.expected)),
                    Span::text(format!(
                        "{:.3}",
                        b.delivered as f64 / b.expected.max(1) as f64
                    )),
                ]
            })
            .collect(),
    });
}
