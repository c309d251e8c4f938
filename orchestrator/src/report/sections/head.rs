//! The top of the report: the verdict in the title, what ran where, and why it did not pass.

use crate::record::{RunRecord, Status};
use crate::report::doc::{Doc, Span, Table};
use crate::report::format::{REASONS_SHOWN, mib};

/// `plan — VERDICT`.
pub fn title(r: &RunRecord) -> String {
    let verdict = match r.outcome.status {
        Status::Passed => "PASSED",
        Status::AssertionFailed => "FAILED (assertion)",
        Status::NodeFailed => "FAILED (node failure)",
        Status::Timeout => "FAILED (timeout)",
        Status::Interrupted => "INTERRUPTED",
        Status::Error => "ERROR",
    };
    format!("{} — {verdict}", r.plan_name)
}

/// The run's facts as a key–value table, then the reasons it did not pass.
pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    let mut rows = vec![
        ("run", Span::Code(r.run_id.clone())),
        ("plan", Span::Code(r.plan_file.clone())),
    ];
    if !r.params.is_empty() {
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push(("parameters", Span::text(params.join(", "))));
    }
    rows.extend([
        ("started", Span::text(r.started_at.clone())),
        ("duration", Span::text(format!("{:.2} s", r.duration_s))),
        ("runner", Span::text(r.runner.clone())),
        (
            "host",
            Span::text(format!(
                "{} cores, {} ({}), kernel {}",
                r.host.cpus,
                mib(r.host.memory_bytes as f64).replace("MiB", "MiB RAM"),
                r.host.cpu_model,
                r.host.kernel
            )),
        ),
        ("command", Span::Code(r.command.join(" "))),
    ]);
    doc.table(Table {
        head: vec![String::new(), String::new()],
        rows: rows
            .into_iter()
            .map(|(k, v)| vec![Span::text(k), v])
            .collect(),
    });
    if !r.outcome.reasons.is_empty() {
        doc.h2("Why it did not pass");
        let all = &r.outcome.reasons;
        let shown = &all[..all.len().min(REASONS_SHOWN)];
        let more = all.len() - shown.len();
        let mut items: Vec<Vec<Span>> = shown.iter().map(|x| vec![Span::text(x.clone())]).collect();
        if more > 0 {
            items.push(vec![
                Span::text(format!("… and {more} more (run.json ")),
                Span::Code("outcome.reasons".into()),
                Span::text(")"),
            ]);
        }
        doc.list(items);
    }
}
