//! Reports rendered from a run record: one document ([`doc::Doc`], built by [`run`] from
//! the sections in [`sections`]) written as `report.md` for people reading on GitHub and as
//! `report.html`, one self-contained page, with the charts as SVG files beside them. Both
//! formats carry the same sections. Rendering depends on the record alone, so
//! `orchestrator report DIR` reproduces the same files byte for byte.

pub mod doc;
pub mod doc_md;
pub mod format;
pub mod html;
pub mod run;
pub mod sections;

pub use format::{mib, ms};

use crate::chart::ChartError;
use crate::record::RunRecord;
use anyhow::{Context, Result};
use std::path::Path;

/// Writes `report.md`, `report.html` and the charts of `record` into `dir`.
pub fn write_all(dir: &Path, record: &RunRecord) -> Result<()> {
    let doc = run::build(record)?;
    if doc.charts().next().is_some() {
        let charts = dir.join(format::CHARTS_DIR);
        std::fs::create_dir_all(&charts)
            .with_context(|| format!("creating {}", charts.display()))?;
    }
    for c in doc.charts() {
        std::fs::write(dir.join(&c.file), &c.svg)
            .with_context(|| format!("writing {}/{}", dir.display(), c.file))?;
    }
    std::fs::write(dir.join("report.md"), doc_md::render(&doc))
        .with_context(|| format!("writing {}/report.md", dir.display()))?;
    std::fs::write(dir.join("report.html"), html::render(&doc))
        .with_context(|| format!("writing {}/report.html", dir.display()))?;
    Ok(())
}

/// `report.md` of a record.
pub fn markdown(record: &RunRecord) -> Result<String, ChartError> {
    Ok(doc_md::render(&run::build(record)?))
}

/// `report.html` of a record.
pub fn html(record: &RunRecord) -> Result<String, ChartError> {
    Ok(html::render(&run::build(record)?))
}
