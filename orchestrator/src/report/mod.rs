//! Reports rendered from a run record: `report.md` for people. Rendering depends on the
//! record alone, so `orchestrator report DIR` reproduces the same files byte for byte.

pub mod doc;
pub mod doc_md;
pub mod html;
pub mod markdown;
pub mod receive_time;
pub mod run_html;

use crate::record::RunRecord;
use anyhow::{Context, Result};
use std::path::Path;

pub fn write_all(dir: &Path, record: &RunRecord) -> Result<()> {
    let md = markdown::render(record);
    std::fs::write(dir.join("report.md"), md)
        .with_context(|| format!("writing {}/report.md", dir.display()))?;
    std::fs::write(dir.join("report.html"), run_html::render(record)?)
        .with_context(|| format!("writing {}/report.html", dir.display()))?;
    Ok(())
}

/// Reasons listed in "Why it did not pass"; a fleet failing as a whole (300 nodes with the
/// same fault) would otherwise bury the page. run.json keeps every one.
pub const REASONS_SHOWN: usize = 20;

/// The reasons to list, and how many more there are.
pub fn shown_reasons(r: &RunRecord) -> (&[String], usize) {
    let all = &r.outcome.reasons;
    let n = all.len().min(REASONS_SHOWN);
    (&all[..n], all.len() - n)
}

/// `1234567` bytes → `1.18 MiB`.
pub fn mib(bytes: f64) -> String {
    format!("{:.2} MiB", bytes / (1024.0 * 1024.0))
}

/// Milliseconds with a precision that suits the magnitude.
pub fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.3} ms")
    } else if v < 1000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{:.2} s", v / 1e3)
    }
}
