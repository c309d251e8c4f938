//! Writes every output of a bench folder from its `bench.json`: `bench.md`, `report.html`,
//! `bench.csv` and `charts/*.svg`. Depends on the record alone (no clock, no host), so
//! `orchestrator report DIR` reproduces the files byte for byte.

use super::matrix::value_text;
use super::store::{BenchRecord, BenchRun, Figures};
use super::view;
use crate::report::{doc_md, html};
use anyhow::{Context, Result};
use std::fmt::Write;
use std::path::Path;

pub const BENCH_MD: &str = "bench.md";
pub const BENCH_HTML: &str = "report.html";
pub const BENCH_CSV: &str = "bench.csv";

pub fn write_all(dir: &Path, rec: &BenchRecord) -> Result<()> {
    let doc = view::build(rec)?;
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts).with_context(|| format!("creating {}", charts.display()))?;
    for c in doc.charts() {
        write_atomic(&dir.join(&c.file), c.svg.as_bytes())?;
    }
    write_atomic(&dir.join(BENCH_MD), doc_md::render(&doc).as_bytes())?;
    write_atomic(&dir.join(BENCH_HTML), html::render(&doc).as_bytes())?;
    write_atomic(&dir.join(BENCH_CSV), csv(rec).as_bytes())?;
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

const FIGURE_COLUMNS: &[&str] = &[
    "duration_s",
    "launch_to_ready_ms",
    "nodes",
    "nodes_failed",
    "messages_published",
    "expected_deliveries",
    "delivered",
    "delivery_ratio",
    "latency_p50_ms",
    "latency_p99_ms",
    "peak_rss_node_bytes",
    "peak_rss_total_bytes",
    "cpu_total_s",
    "duplicates_per_delivery",
    "bytes_in_per_delivery",
    "host_saturated",
    "workload_span_s",
];

fn figure_values(f: &Figures) -> [String; 17] {
    let o = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    [
        f.duration_s.to_string(),
        o(f.launch_to_ready_ms),
        f.nodes.to_string(),
        f.nodes_failed.to_string(),
        f.messages_published.to_string(),
        f.expected_deliveries.to_string(),
        f.delivered.to_string(),
        o(f.delivery_ratio),
        o(f.latency_p50_ms),
        o(f.latency_p99_ms),
        o(f.peak_rss_node_bytes),
        o(f.peak_rss_total_bytes),
        o(f.cpu_total_s),
        o(f.duplicates_per_delivery),
        o(f.bytes_in_per_delivery),
        f.host_saturated.map_or(String::new(), |b| b.to_string()),
        o(f.workload_span_s),
    ]
}

/// One row per run (warm-ups included, marked), in the order they ran.
pub fn csv(rec: &BenchRecord) -> String {
    let params: Vec<&String> = rec.matrix.params.keys().collect();
    let mut o = String::new();
    let mut head: Vec<String> = ["run_id", "warmup", "iteration"].map(String::from).to_vec();
    head.extend(params.iter().map(|p| p.to_string()));
    head.extend(["status", "failed", "started_at"].map(String::from));
    head.extend(FIGURE_COLUMNS.iter().map(|c| c.to_string()));
    head.push("reason".into());
    let _ = writeln!(o, "{}", head.join(","));
    for r in &rec.runs {
        let _ = writeln!(
            o,
            "{}",
            row(rec, &params, r)
                .iter()
                .map(|f| field(f))
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    o
}

fn row(rec: &BenchRecord, params: &[&String], r: &BenchRun) -> Vec<String> {
    let cell = rec.cells.get(r.cell);
    let mut v = vec![
        r.run_id.clone(),
        r.warmup.to_string(),
        (r.iteration + 1).to_string(),
    ];
    v.extend(params.iter().map(|p| {
        cell.and_then(|c| c.get(p))
            .map(value_text)
            .unwrap_or_default()
    }));
    v.push(
        serde_json::to_value(r.status)
            .ok()
            .and_then(|s| s.as_str().map(String::from))
            .unwrap_or_default(),
    );
    v.push(r.failed().to_string());
    v.push(r.started_at.clone());
    v.extend(figure_values(&r.figures));
    v.push(r.reasons.join("; "));
    v
}

/// RFC 4180: quote fields holding a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn csv_quoting() {
        assert_eq!(field("a"), "a");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
