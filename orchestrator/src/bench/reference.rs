//! The reference benchmark's own failure rule beside ours, for lock-step plans (the
//! reference's workload, `testplans/bench-reference.yaml`): per cell the workload span — the
//! reference's "duration" — and the runs that fail the reference's rule: over
//! [`REFERENCE_LIMIT_S`] of workload span, or no complete workload (hung, named by node).

use super::matrix::value_text;
use super::stats::Spread;
use super::store::{BenchRecord, BenchRun, REFERENCE_LIMIT_S};
use crate::report::doc::{Doc, Span, Table};

/// How many runs failed by the reference's rule are listed by name.
const LISTED: usize = 30;

/// Adds the section when any run has a workload span (a lock-step plan); nothing otherwise.
pub fn add_to(rec: &BenchRecord, doc: &mut Doc) {
    if !rec.runs.iter().any(|r| r.figures.workload_span_s.is_some()) {
        return;
    }
    doc.h2("The reference's failure rule");
    doc.text(format!(
        "The reference benchmark times its test body and counts a run as failed when it takes over {REFERENCE_LIMIT_S} s (or leaves no trace). Its duration here is the workload span: from the start of the first workload phase (peer discovery) to the moment the orchestrator saw the last lock-step message at every subscriber — without launching the processes, which the reference does in-process in a few milliseconds. A run fails the reference's rule when its span is over {REFERENCE_LIMIT_S} s or when it did not complete (it hung: the nodes are named); it fails ours when it did not pass. Recorded runs only; the span's median [min … max] is over the runs that completed."
    ));
    let mut head: Vec<String> = rec.matrix.params.keys().cloned().collect();
    head.extend(
        [
            "runs",
            "workload span, s",
            "over 3 s",
            "did not pass (ours)",
            "failed by the reference's rule",
        ]
        .map(String::from),
    );
    let mut t = Table {
        head,
        rows: Vec::new(),
    };
    for (ci, cell) in rec.cells.iter().enumerate() {
        let runs: Vec<&BenchRun> = rec.runs_of(ci).collect();
        let spans: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.figures.workload_span_s)
            .collect();
        let over = spans.iter().filter(|s| **s > REFERENCE_LIMIT_S).count();
        let ours = runs.iter().filter(|r| r.failed()).count();
        let theirs = runs.iter().filter(|r| r.failed_by_reference()).count();
        let mut row: Vec<Span> = rec
            .matrix
            .params
            .keys()
            .map(|k| Span::text(cell.get(k).map(value_text).unwrap_or_default()))
            .collect();
        row.push(Span::text(runs.len().to_string()));
        row.push(Span::text(Spread::of(&spans).map_or("n/a".into(), |s| {
            format!("{:.3} [{:.3} … {:.3}]", s.median, s.min, s.max)
        })));
        for n in [over, ours, theirs] {
            row.push(if n > 0 {
                Span::Strong(n.to_string())
            } else {
                Span::text("0")
            });
        }
        t.rows.push(row);
    }
    doc.table(t);
    failed_by_rule(rec, doc);
}

/// Each recorded run the reference's rule fails: its span, or how it ended and why.
fn failed_by_rule(rec: &BenchRecord, doc: &mut Doc) {
    let failed: Vec<&BenchRun> = rec.recorded().filter(|r| r.failed_by_reference()).collect();
    if failed.is_empty() {
        doc.text(format!(
            "No recorded run failed by the reference's rule: every one completed within {REFERENCE_LIMIT_S} s."
        ));
        return;
    }
    let items = failed
        .iter()
        .take(LISTED)
        .map(|r| {
            let how = match (r.failed(), r.figures.workload_span_s) {
                (false, Some(s)) => format!("workload span {s:.3} s"),
                _ => format!("{:?}", r.status).to_lowercase(),
            };
            let mut spans = vec![
                Span::Link(r.run_id.clone(), format!("{}/report.md", r.dir)),
                Span::text(format!(": {how}")),
            ];
            if let Some(reason) = r.reasons.first().filter(|_| r.failed()) {
                spans.push(Span::text(format!(" — {reason}")));
            }
            spans
        })
        .collect();
    doc.list(items);
    if failed.len() > LISTED {
        doc.text(format!(
            "… and {} more (bench.csv has every run's `workload_span_s` and status).",
            failed.len() - LISTED
        ));
    }
}
