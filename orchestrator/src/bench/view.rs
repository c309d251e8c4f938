//! What a bench report says, built from `bench.json` alone: the facts, one chart per
//! metric, the variant comparison, every cell's figures and the failed runs. `bench.md` and
//! `report.html` are two renderings of this one document.

use super::compare::{CellStats, Pair, Verdict, cell_stats, pairs, verdict};
use super::matrix::{Axes, Cell, value_text};
use super::metric::{FAILURE_RATE_ID, FAILURE_RATE_TITLE, METRICS, Metric};
use super::stats::{Spread, ratio};
use super::store::BenchRecord;
use crate::chart::{self, ChartError, LineChart, Marker, Point, Series};
use crate::report::doc::{Chart, Doc, Span, Table};
use crate::report::mib;
use serde_json::Value;
use std::collections::BTreeMap;

/// How many failed runs are listed by name.
const FAILED_LISTED: usize = 50;

pub fn build(rec: &BenchRecord) -> Result<Doc, ChartError> {
    let axes = Axes::of(&rec.matrix);
    let stats = cell_stats(rec);
    let pairs = pairs(rec, &axes);
    let mut title = format!("Bench: {}", rec.plan_name);
    if let Some(values) = axes.compare.as_ref().and_then(|c| rec.matrix.params.get(c)) {
        title.push_str(&format!(
            " — {}",
            values
                .iter()
                .map(value_text)
                .collect::<Vec<_>>()
                .join(" vs ")
        ));
    }
    let mut doc = Doc::new(title);
    facts(rec, &stats, &mut doc);
    how_to_read(rec, &axes, &mut doc);

    doc.h2("Charts");
    for (i, m) in METRICS.iter().enumerate() {
        let spec = metric_chart(rec, &axes, &stats, m, i);
        doc.chart(Chart {
            title: m.title.into(),
            file: format!("charts/{}.svg", m.id),
            svg: chart::line_chart(&spec)?,
        });
    }
    let spec = failure_chart(rec, &axes, &stats);
    doc.chart(Chart {
        title: FAILURE_RATE_TITLE.into(),
        file: format!("charts/{FAILURE_RATE_ID}.svg"),
        svg: chart::line_chart(&spec)?,
    });

    if !pairs.is_empty() {
        comparison(rec, &axes, &stats, &pairs, &mut doc);
    }
    cells_table(rec, &stats, &mut doc);
    super::reference::add_to(rec, &mut doc);
    failed_runs(rec, &mut doc);
    doc.h2("Reproduce");
    doc.para(vec![
        Span::text("Every figure above is rendered from "),
        Span::Code("bench.json".into()),
        Span::text(" beside this file; "),
        Span::Code("bench.csv".into()),
        Span::text(" has one row per run and each run's folder under "),
        Span::Code("runs/".into()),
        Span::text(" its run.json, report and node logs. Re-render with "),
        Span::Code("orchestrator report <this folder>".into()),
        Span::text("; run again with "),
        Span::Code(rec.command.join(" ")),
        Span::text("."),
    ]);
    Ok(doc)
}

fn facts(rec: &BenchRecord, stats: &[CellStats], doc: &mut Doc) {
    let m = &rec.matrix;
    let recorded = rec.recorded().count();
    let planned = rec.cells.len() * m.iterations as usize;
    let failed: usize = stats.iter().map(|s| s.failed).sum();
    let warmups = rec.runs.iter().filter(|r| r.warmup).count();
    let sweep = m
        .params
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}: {}",
                v.iter().map(value_text).collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(" × ");
    let mut rows = vec![
        ("plan", Span::Code(rec.plan_file.clone())),
        (
            "matrix",
            Span::text(format!("{sweep} ({} cells)", rec.cells.len())),
        ),
        (
            "iterations",
            Span::text(format!(
                "{} per cell, each a fresh fleet; {} warm-up runs before them, not counted",
                m.iterations, m.warmup
            )),
        ),
        (
            "runs",
            if rec.complete {
                Span::text(format!("{recorded} recorded (+{warmups} warm-up)"))
            } else {
                Span::Strong(format!(
                    "{recorded} of {planned} recorded: incomplete, continue with --resume"
                ))
            },
        ),
        (
            "failed runs",
            if failed == 0 {
                Span::text(format!("0 of {recorded}"))
            } else {
                Span::Strong(format!(
                    "{failed} of {recorded} ({:.1}%)",
                    100.0 * failed as f64 / recorded.max(1) as f64
                ))
            },
        ),
        (
            "wall time",
            Span::text(format!("{} ({:.0} s)", hms(rec.wall_s), rec.wall_s)),
        ),
        ("machine load at run start", load_text(rec)),
        ("started", Span::text(rec.started_at.clone())),
        (
            "host",
            Span::text(format!(
                "{} cores, {} RAM ({}), kernel {}",
                rec.host.cpus,
                mib(rec.host.memory_bytes as f64),
                rec.host.cpu_model,
                rec.host.kernel
            )),
        ),
        ("testbed", Span::text(rec.testbed_version.clone())),
        ("command", Span::Code(rec.command.join(" "))),
    ];
    if !rec.overrides.is_empty() {
        let o = rec
            .overrides
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect::<Vec<_>>();
        rows.insert(2, ("parameters set", Span::text(o.join(", "))));
    }
    doc.table(Table {
        head: vec!["".into(), "".into()],
        rows: rows
            .into_iter()
            .map(|(k, v)| vec![Span::text(k), v])
            .collect(),
    });
}

/// The 1-minute load average over the runs' starts. It counts the sweep's own fleets too (a
/// 20-process fleet keeps it near 20 while it runs, and the average decays over a minute), so
/// only a load above the largest fleet plus the core count says that other work competed.
fn load_text(rec: &BenchRecord) -> Span {
    let loads: Vec<f64> = rec.runs.iter().filter_map(|r| r.load_avg).collect();
    let Some(s) = Spread::of(&loads) else {
        return Span::text("not recorded");
    };
    let text = format!(
        "1-minute load average median {:.1}, max {:.1} on {} cores",
        s.median, s.max, rec.host.cpus
    );
    let largest_fleet = rec.runs.iter().map(|r| r.figures.nodes).max().unwrap_or(0);
    if s.median > f64::from(largest_fleet) + rec.host.cpus as f64 {
        Span::Strong(format!(
            "{text}: above the largest fleet ({largest_fleet} nodes) plus the cores, so other work competed with the fleets"
        ))
    } else {
        Span::text(format!(
            "{text} (the sweep's own fleets, up to {largest_fleet} processes, count in it)"
        ))
    }
}

fn how_to_read(rec: &BenchRecord, axes: &Axes, doc: &mut Doc) {
    doc.h2("How to read this");
    let mut items = vec![
        vec![Span::text(format!(
            "Each figure of a cell is the median over its {} iterations; the spread is the interquartile range [q1–q3] (the middle half of the runs), with min and max in the cell table.",
            rec.matrix.iterations
        ))],
        vec![Span::text(format!(
            "Charts: x = {}, one line per {}; markers are medians, error bars the interquartile range.",
            axes.x,
            series_kind(axes)
        ))],
        vec![Span::text(
            "A run that did not pass counts in the failure rate. Its figures enter the medians only when its workload ran to the end (a failed assertion, e.g. delivery ratio below 1); crashed, hung or timed-out runs are listed at the end.",
        )],
        vec![Span::text(
            "Host-bound (cell table): runs whose host CPU was saturated during the publish window (docs/report-format.md, \"Host load\"). Their latencies are bounded by this machine, not by the protocol: compare such cells with care, or run fewer nodes.",
        )],
    ];
    if let Some(c) = &axes.compare {
        items.push(vec![Span::text(format!(
            "Comparison: for every cell and metric, B ({c} = {}) against A ({c} = {}): the ratio of medians B/A, and a verdict. A difference is called clear only when the interquartile ranges of A and B do not overlap; otherwise the verdict is \"no clear difference\": the difference is within the run-to-run spread. Fewer than {} runs on a side give no verdict.",
            rec.matrix.params[c].iter().skip(1).map(value_text).collect::<Vec<_>>().join(", "),
            rec.matrix.params[c].first().map(value_text).unwrap_or_default(),
            super::compare::MIN_RUNS
        ))]);
    }
    doc.list(items);
}

fn series_kind(axes: &Axes) -> String {
    let mut parts: Vec<&str> = axes.others.iter().map(String::as_str).collect();
    if let Some(c) = &axes.compare {
        parts.push(c);
    }
    if parts.is_empty() {
        "series".into()
    } else {
        format!("({})", parts.join(", "))
    }
}

/// Positions on the x axis: the values themselves when all are numbers, else 0, 1, 2 …
fn x_positions(rec: &BenchRecord, axes: &Axes) -> BTreeMap<String, (f64, String)> {
    let values = rec.matrix.params.get(&axes.x).cloned().unwrap_or_default();
    let numeric = values.iter().all(Value::is_number);
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = if numeric {
                v.as_f64().unwrap_or(i as f64)
            } else {
                i as f64
            };
            (v.to_string(), (x, value_text(v)))
        })
        .collect()
}

/// Series of the charts, in order: per combination of the other parameters (colour), per
/// variant (marker and dash). Each holds its cells in x order.
struct SeriesDef {
    label: String,
    color: usize,
    variant: usize,
    cells: Vec<usize>,
}

fn series_defs(rec: &BenchRecord, axes: &Axes) -> Vec<SeriesDef> {
    let variant_values = axes
        .compare
        .as_ref()
        .and_then(|c| rec.matrix.params.get(c))
        .cloned()
        .unwrap_or_default();
    let mut defs: Vec<SeriesDef> = Vec::new();
    let mut colors: Vec<String> = Vec::new();
    for cell in &rec.cells {
        let label = axes.series_label(cell);
        match defs.iter_mut().find(|d| d.label == label) {
            Some(d) => d.cells.push(cell.index),
            None => {
                let others = others_key(axes, cell);
                let color = colors.iter().position(|c| *c == others).unwrap_or_else(|| {
                    colors.push(others);
                    colors.len() - 1
                });
                let variant = axes
                    .compare
                    .as_ref()
                    .and_then(|c| cell.get(c))
                    .and_then(|v| variant_values.iter().position(|x| x == v))
                    .unwrap_or(0);
                defs.push(SeriesDef {
                    label,
                    color,
                    variant,
                    cells: vec![cell.index],
                });
            }
        }
    }
    // Order: by colour, then variant, so the legend reads in pairs.
    defs.sort_by_key(|d| (d.color, d.variant));
    defs
}

fn others_key(axes: &Axes, cell: &Cell) -> String {
    axes.others
        .iter()
        .map(|k| cell.get(k).map(value_text).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(",")
}

fn chart_frame(
    rec: &BenchRecord,
    axes: &Axes,
    title: &str,
    y_label: String,
    from_zero: bool,
) -> LineChart {
    let xs = x_positions(rec, axes);
    let mut ticks: Vec<(f64, String)> = xs.values().cloned().collect();
    ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
    LineChart {
        title: title.to_string(),
        x_label: axes.x.clone(),
        y_label,
        x_ticks: ticks,
        y_from_zero: from_zero,
        series: Vec::new(),
        note: None,
    }
}

/// Shifts series sideways a little so error bars at one x do not hide each other.
fn dodge(rec: &BenchRecord, axes: &Axes, n_series: usize, k: usize) -> f64 {
    let xs: Vec<f64> = x_positions(rec, axes).values().map(|p| p.0).collect();
    let span = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - xs.iter().cloned().fold(f64::INFINITY, f64::min);
    let step = if xs.len() > 1 && span > 0.0 {
        span / (xs.len() - 1) as f64
    } else {
        1.0
    };
    let width = step * 0.18;
    if n_series <= 1 {
        0.0
    } else {
        width * (k as f64 / (n_series - 1) as f64 - 0.5)
    }
}

fn metric_chart(
    rec: &BenchRecord,
    axes: &Axes,
    stats: &[CellStats],
    m: &Metric,
    mi: usize,
) -> LineChart {
    let xs = x_positions(rec, axes);
    let defs = series_defs(rec, axes);
    let mut c = chart_frame(rec, axes, m.title, m.axis_label(), m.from_zero);
    c.note = Some("median per cell; error bars: interquartile range".into());
    for (k, d) in defs.iter().enumerate() {
        let off = dodge(rec, axes, defs.len(), k);
        let mut points: Vec<Point> = d
            .cells
            .iter()
            .filter_map(|&ci| {
                let s = stats[ci].figures[mi]?;
                let x = xs.get(&rec.cells[ci].get(&axes.x)?.to_string())?.0;
                Some(Point {
                    x: x + off,
                    y: s.median,
                    bar: Some((s.q1, s.q3)),
                })
            })
            .collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        c.series.push(Series {
            label: d.label.clone(),
            color: d.color,
            dashed: d.variant % 2 == 1,
            marker: Marker::nth(d.variant),
            points,
        });
    }
    c
}

fn failure_chart(rec: &BenchRecord, axes: &Axes, stats: &[CellStats]) -> LineChart {
    let xs = x_positions(rec, axes);
    let defs = series_defs(rec, axes);
    let mut c = chart_frame(
        rec,
        axes,
        FAILURE_RATE_TITLE,
        "failed runs / runs".into(),
        true,
    );
    c.note = Some("share of a cell's runs that did not pass".into());
    for (k, d) in defs.iter().enumerate() {
        let off = dodge(rec, axes, defs.len(), k) * 0.3;
        let mut points: Vec<Point> = d
            .cells
            .iter()
            .filter_map(|&ci| {
                let rate = stats[ci].failure_rate()?;
                let x = xs.get(&rec.cells[ci].get(&axes.x)?.to_string())?.0;
                Some(Point {
                    x: x + off,
                    y: rate,
                    bar: None,
                })
            })
            .collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        c.series.push(Series {
            label: d.label.clone(),
            color: d.color,
            dashed: d.variant % 2 == 1,
            marker: Marker::nth(d.variant),
            points,
        });
    }
    c
}

fn spread_text(m: &Metric, s: Option<&Spread>) -> String {
    match s {
        Some(s) => format!(
            "{} [{}–{}] (n={})",
            m.format(s.median),
            fmt_num(m, s.q1),
            fmt_num(m, s.q3),
            s.n
        ),
        None => "n/a".into(),
    }
}

fn fmt_num(m: &Metric, v: f64) -> String {
    format!("{v:.*}", m.decimals)
}

fn comparison(rec: &BenchRecord, axes: &Axes, stats: &[CellStats], pairs: &[Pair], doc: &mut Doc) {
    let c = axes.compare.as_deref().unwrap_or("variant");
    let b_names: Vec<String> = {
        let mut v: Vec<String> = pairs.iter().map(|p| p.b_name.clone()).collect();
        v.dedup();
        v
    };
    let a_name = pairs.first().map(|p| p.a_name.clone()).unwrap_or_default();
    doc.h2(format!(
        "Comparison: {} vs {a_name} (by {c})",
        b_names.join(", ")
    ));
    doc.text(format!(
        "B = {}, A = {a_name}. Counts of cells where B is clearly better, clearly worse, or not clearly different from A:",
        b_names.join(", ")
    ));
    let mut summary = Table {
        head: [
            "metric",
            "B clearly better",
            "B clearly worse",
            "no clear difference",
            "no verdict",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
    };
    for (mi, m) in METRICS.iter().enumerate() {
        let (mut better, mut worse, mut same, mut none) = (0, 0, 0, 0);
        for p in pairs {
            let v = verdict(
                stats[p.a_cell].figures[mi].as_ref(),
                stats[p.b_cell].figures[mi].as_ref(),
            );
            match (v, v.b_better(m)) {
                (_, Some(true)) => better += 1,
                (_, Some(false)) => worse += 1,
                (Verdict::NoClearDifference, None) => same += 1,
                _ => none += 1,
            }
        }
        summary.rows.push(vec![
            Span::text(m.title),
            Span::text(better.to_string()),
            Span::text(worse.to_string()),
            Span::text(same.to_string()),
            Span::text(none.to_string()),
        ]);
    }
    doc.table(summary);

    let slice_params: Vec<&String> = rec
        .matrix
        .params
        .keys()
        .filter(|k| Some(*k) != axes.compare.as_ref())
        .collect();
    for (mi, m) in METRICS.iter().enumerate() {
        doc.h3(m.title);
        let mut head: Vec<String> = slice_params.iter().map(|s| s.to_string()).collect();
        head.extend(
            [
                "A",
                "B",
                "A: median [q1–q3]",
                "B: median [q1–q3]",
                "B/A",
                "verdict",
            ]
            .map(String::from),
        );
        let mut t = Table {
            head,
            rows: Vec::new(),
        };
        for p in pairs {
            let a = stats[p.a_cell].figures[mi];
            let b = stats[p.b_cell].figures[mi];
            let v = verdict(a.as_ref(), b.as_ref());
            let mut row: Vec<Span> = slice_params
                .iter()
                .map(|k| {
                    Span::text(
                        rec.cells[p.a_cell]
                            .get(k)
                            .map(value_text)
                            .unwrap_or_default(),
                    )
                })
                .collect();
            row.push(Span::text(p.a_name.clone()));
            row.push(Span::text(p.b_name.clone()));
            row.push(Span::text(spread_text(m, a.as_ref())));
            row.push(Span::text(spread_text(m, b.as_ref())));
            row.push(Span::text(
                a.zip(b)
                    .and_then(|(a, b)| ratio(a.median, b.median))
                    .map_or("n/a".into(), |r| format!("{r:.3}")),
            ));
            let text = v.describe(&p.b_name, m);
            row.push(if matches!(v, Verdict::Higher(_) | Verdict::Lower(_)) {
                Span::Strong(text)
            } else {
                Span::Text(text)
            });
            t.rows.push(row);
        }
        doc.table(t);
    }
    doc.h3(FAILURE_RATE_TITLE);
    let mut head: Vec<String> = slice_params.iter().map(|s| s.to_string()).collect();
    head.extend(["A failed / runs", "B failed / runs"].map(String::from));
    let mut t = Table {
        head,
        rows: Vec::new(),
    };
    for p in pairs {
        let mut row: Vec<Span> = slice_params
            .iter()
            .map(|k| {
                Span::text(
                    rec.cells[p.a_cell]
                        .get(k)
                        .map(value_text)
                        .unwrap_or_default(),
                )
            })
            .collect();
        for s in [&stats[p.a_cell], &stats[p.b_cell]] {
            let text = format!("{} / {}", s.failed, s.runs);
            row.push(if s.failed > 0 {
                Span::Strong(text)
            } else {
                Span::Text(text)
            });
        }
        t.rows.push(row);
    }
    doc.table(t);
}

fn cells_table(rec: &BenchRecord, stats: &[CellStats], doc: &mut Doc) {
    doc.h2("All cells");
    doc.text("Median [min … max] over each cell's completed runs.");
    let mut head: Vec<String> = rec.matrix.params.keys().cloned().collect();
    head.extend(["runs", "failed", "host-bound"].map(String::from));
    head.extend(METRICS.iter().map(|m| m.axis_label()));
    let mut t = Table {
        head,
        rows: Vec::new(),
    };
    for (ci, (cell, s)) in rec.cells.iter().zip(stats).enumerate() {
        let mut row: Vec<Span> = rec
            .matrix
            .params
            .keys()
            .map(|k| Span::text(cell.get(k).map(value_text).unwrap_or_default()))
            .collect();
        row.push(Span::text(s.runs.to_string()));
        row.push(if s.failed > 0 {
            Span::Strong(s.failed.to_string())
        } else {
            Span::text("0")
        });
        row.push(host_bound(rec, ci));
        for (mi, m) in METRICS.iter().enumerate() {
            row.push(Span::text(match s.figures[mi] {
                Some(f) => format!(
                    "{} [{} … {}]",
                    fmt_num(m, f.median),
                    fmt_num(m, f.min),
                    fmt_num(m, f.max)
                ),
                None => "n/a".into(),
            }));
        }
        t.rows.push(row);
    }
    doc.table(t);
}

/// How many of a cell's recorded runs had a saturated host: "**2 of 3**", "0 of 3", or
/// "n/a" where no run sampled the host.
fn host_bound(rec: &BenchRecord, cell: usize) -> Span {
    let known: Vec<bool> = rec
        .runs
        .iter()
        .filter(|r| r.cell == cell && !r.warmup)
        .filter_map(|r| r.figures.host_saturated)
        .collect();
    let bound = known.iter().filter(|b| **b).count();
    match (known.len(), bound) {
        (0, _) => Span::text("n/a"),
        (n, 0) => Span::text(format!("0 of {n}")),
        (n, b) => Span::Strong(format!("{b} of {n}")),
    }
}

fn failed_runs(rec: &BenchRecord, doc: &mut Doc) {
    let failed: Vec<_> = rec.runs.iter().filter(|r| r.failed()).collect();
    if failed.is_empty() {
        return;
    }
    doc.h2("Failed runs");
    let items = failed
        .iter()
        .take(FAILED_LISTED)
        .map(|r| {
            let mut spans = vec![
                Span::Link(r.run_id.clone(), format!("{}/report.md", r.dir)),
                Span::text(format!(
                    "{}: {:?}",
                    if r.warmup { " (warm-up)" } else { "" },
                    r.status
                )),
            ];
            if let Some(reason) = r.reasons.first() {
                spans.push(Span::text(format!(" — {reason}")));
            }
            spans
        })
        .collect();
    doc.list(items);
    if failed.len() > FAILED_LISTED {
        doc.text(format!(
            "… and {} more (see bench.csv).",
            failed.len() - FAILED_LISTED
        ));
    }
}

/// `1h 02m 03s`, `12m 05s`, `42s`.
pub fn hms(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}
