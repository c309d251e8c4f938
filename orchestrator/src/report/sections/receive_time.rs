//! "Deliveries by receive time": first deliveries per second by (origin group → receiver
//! group) on the network events' clock, so a partition shows as the cross-group counts
//! falling to zero while it is in force and jumping after the heal: a chart (one line per
//! pair, the partitions shaded) and a table.

use crate::chart::{self, Band, ChartError, LineChart, Marker, Point, Series};
use crate::record::{ReceivedOverTime, RunRecord};
use crate::report::doc::{Chart, Doc, Span, Table};
use crate::report::format::CHARTS_DIR;

/// Most table rows: a longer view merges buckets into rows of several.
const MAX_ROWS: usize = 60;

/// The section: the text, the chart (when a pair received something), then the table.
pub fn add_to(doc: &mut Doc, r: &RunRecord) -> Result<(), ChartError> {
    let Some(v) = shown(r) else {
        return Ok(());
    };
    heading(v, doc);
    if !v.pairs.is_empty() {
        let (c, bands) = line_chart(v);
        doc.chart(Chart {
            title: c.title.clone(),
            file: format!("{CHARTS_DIR}/received-over-time.svg"),
            svg: chart::line_chart_with_bands(&c, &bands)?,
        });
    }
    doc.table(table(v));
    Ok(())
}

fn shown(r: &RunRecord) -> Option<&ReceivedOverTime> {
    r.summary
        .received_over_time
        .as_ref()
        .filter(|v| !v.pairs.is_empty() || v.receivers_without_counts > 0)
}

fn heading(v: &ReceivedOverTime, doc: &mut Doc) {
    doc.h2("Deliveries by receive time");
    let zero = if v.zero == "fleet_launched" {
        "the whole fleet had been launched (the clock of the network events)"
    } else {
        "the first node was launched"
    };
    let mut text = format!(
        "First deliveries per origin group → receiver group, by the second the receiver got \
         them, in seconds since {zero}. Each node counts per wall-clock second; a second counts \
         in the row holding its middle, so a count may sit up to half a second off."
    );
    if !v.cuts.is_empty() {
        text.push_str(" Bold: a partition was in force during the row.");
    }
    doc.text(text);
    if v.receivers_without_counts > 0 {
        doc.text(format!(
            "{} receivers sent no receive times (their implementation does not report them); \
             their deliveries are not in this table.",
            v.receivers_without_counts
        ));
    }
    if !v.events.is_empty() {
        doc.list(
            v.events
                .iter()
                .map(|e| vec![Span::text(format!("{:.1} s: {}", e.at_s, e.what))])
                .collect(),
        );
    }
}

/// Buckets per row and the rows shown: from the first with a delivery to the last bucket.
fn rows(v: &ReceivedOverTime) -> (usize, std::ops::Range<usize>) {
    let len = v.pairs.iter().map(|p| p.counts.len()).max().unwrap_or(0);
    let per_row = len.div_ceil(MAX_ROWS).max(1);
    let first = v
        .pairs
        .iter()
        .filter_map(|p| p.counts.iter().position(|&c| c > 0))
        .min()
        .unwrap_or(0);
    (per_row, first / per_row..len.div_ceil(per_row))
}

fn sum(counts: &[u64], from: usize, to: usize) -> u64 {
    counts
        .get(from.min(counts.len())..to.min(counts.len()))
        .map_or(0, |c| c.iter().sum())
}

fn table(v: &ReceivedOverTime) -> Table {
    let (per_row, rows) = rows(v);
    let width = per_row as f64 * v.bucket_s as f64;
    let mut head = vec!["received (s)".to_string()];
    head.extend(
        v.pairs
            .iter()
            .map(|p| format!("{} → {}", p.origin_group, p.receiver_group)),
    );
    let network = !v.events.is_empty() || !v.cuts.is_empty();
    if network {
        head.push("network".into());
    }
    let rows = rows
        .map(|k| {
            let (from, to) = (k as f64 * width, (k + 1) as f64 * width);
            let mut row = vec![Span::text(format!("{from:.0}–{to:.0}"))];
            row.extend(
                v.pairs.iter().map(|p| {
                    Span::text(sum(&p.counts, k * per_row, (k + 1) * per_row).to_string())
                }),
            );
            if network {
                let events: Vec<String> = v
                    .events
                    .iter()
                    .filter(|e| from <= e.at_s && e.at_s < to)
                    .map(|e| format!("{:.1} s: {}", e.at_s, e.what))
                    .collect();
                let cuts: Vec<String> = v
                    .cuts
                    .iter()
                    .filter(|c| c.overlaps(from, to))
                    .map(|c| c.name.clone().unwrap_or_else(|| "partition".into()))
                    .collect();
                row.push(match (events.is_empty(), cuts.is_empty()) {
                    (false, true) => Span::text(events.join("; ")),
                    (false, false) => Span::Strong(events.join("; ")),
                    (true, false) => Span::Strong(format!("partitioned: {}", cuts.join(", "))),
                    (true, true) => Span::text(""),
                });
                // Rows under a cut are bold from the first cell, so they stand out.
                if !cuts.is_empty() {
                    row[0] = Span::Strong(row[0].plain());
                }
            }
            row
        })
        .collect();
    Table { head, rows }
}

/// Deliveries per second, one line per pair (dashed between two groups), and a band per
/// partition.
fn line_chart(v: &ReceivedOverTime) -> (LineChart, Vec<Band>) {
    let (_, rows) = rows(v);
    let w = v.bucket_s as f64;
    let first = rows.start;
    let len = v.pairs.iter().map(|p| p.counts.len()).max().unwrap_or(0);
    let series = v
        .pairs
        .iter()
        .enumerate()
        .map(|(i, p)| Series {
            label: format!("{} → {}", p.origin_group, p.receiver_group),
            color: i,
            dashed: p.origin_group != p.receiver_group,
            marker: Marker::nth(i),
            points: (first..len)
                .map(|b| Point {
                    x: (b as f64 + 0.5) * w,
                    y: p.counts.get(b).copied().unwrap_or(0) as f64 / w,
                    bar: None,
                })
                .collect(),
        })
        .collect();
    let (x0, x1) = (first as f64 * w, len as f64 * w);
    let step = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| (x1 - x0) / s <= 15.0)
        .unwrap_or(1800.0);
    let x_ticks = (0..)
        .map(|i| (x0 / step).floor() * step + i as f64 * step)
        .take_while(|x| *x <= x1)
        .map(|x| (x, format!("{x:.0}")))
        .collect();
    let bands = v
        .cuts
        .iter()
        .map(|c| Band {
            from: c.from_s,
            to: c.to_s.unwrap_or(x1),
            label: c.name.clone().unwrap_or_else(|| "partition".into()),
        })
        .collect();
    let chart = LineChart {
        title: "Deliveries by receive time".into(),
        x_label: if v.zero == "fleet_launched" {
            "seconds since the fleet was launched (the events' clock)".into()
        } else {
            "seconds since the first launch".into()
        },
        y_label: "deliveries per second".into(),
        x_ticks,
        y_from_zero: true,
        series,
        note: Some("origin → receiver group; dashed: between groups; shaded: partition".into()),
    };
    (chart, bands)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AxisEvent, Cut, PairOverTime};

    fn view() -> ReceivedOverTime {
        let pair = |o: &str, r: &str, counts: Vec<u64>| PairOverTime {
            origin_group: o.into(),
            receiver_group: r.into(),
            counts,
        };
        ReceivedOverTime {
            zero_unix_ns: 1,
            zero: "fleet_launched".into(),
            bucket_s: 1,
            pairs: vec![
                pair("left", "left", vec![0, 0, 5, 5, 5, 5, 5]),
                pair("left", "right", vec![0, 0, 5, 0, 0, 9, 5]),
            ],
            events: vec![
                AxisEvent {
                    at_s: 3.0,
                    kind: "partition".into(),
                    what: "partition `cut`: left | right".into(),
                },
                AxisEvent {
                    at_s: 5.0,
                    kind: "heal".into(),
                    what: "heal all".into(),
                },
            ],
            cuts: vec![Cut {
                name: Some("cut".into()),
                sides: vec![vec!["left".into()], vec!["right".into()]],
                from_s: 3.0,
                to_s: Some(5.0),
            }],
            receivers_without_counts: 0,
        }
    }

    #[test]
    fn table_rows_start_at_the_first_delivery_and_mark_the_cut() {
        let t = table(&view());
        assert_eq!(
            t.head,
            ["received (s)", "left → left", "left → right", "network"]
        );
        let text: Vec<Vec<String>> = t
            .rows
            .iter()
            .map(|r| r.iter().map(Span::plain).collect())
            .collect();
        assert_eq!(text[0], ["2–3", "5", "5", ""]);
        assert_eq!(
            text[1],
            ["3–4", "5", "0", "3.0 s: partition `cut`: left | right"]
        );
        assert_eq!(text[2], ["4–5", "5", "0", "partitioned: cut"]);
        assert_eq!(text[3], ["5–6", "5", "9", "5.0 s: heal all"]);
        assert_eq!(text.len(), 5);
        assert!(matches!(t.rows[2][0], Span::Strong(_)));
        assert!(matches!(t.rows[3][0], Span::Text(_)));
    }

    #[test]
    fn long_views_merge_rows_and_the_chart_draws() {
        let mut v = view();
        v.pairs[0].counts = vec![1; 150];
        let t = table(&v);
        // 150 buckets in at most 60 rows: 3 a row.
        assert_eq!(t.rows.len(), 50);
        assert_eq!(t.rows[0][1].plain(), "3");
        let (c, bands) = line_chart(&v);
        assert_eq!(c.series.len(), 2);
        assert!(c.series[1].dashed && !c.series[0].dashed);
        assert_eq!(bands[0].from, 3.0);
        assert!(c.x_ticks.len() <= 16);
        assert!(chart::line_chart_with_bands(&c, &bands).is_ok());
    }
}
