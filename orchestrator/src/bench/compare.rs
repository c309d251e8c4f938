//! Per-cell statistics and the side-by-side comparison of variants.
//!
//! A cell's figure is the spread of that figure over the cell's completed runs (failed runs
//! count only in the failure rate). Variant B is compared with variant A (the first value of
//! the matrix's `compare` parameter) in every slice — the cells that differ only in the
//! variant — and every metric: the ratio of medians, and a verdict. The verdict calls a
//! difference clear only when the interquartile ranges of A and B do not overlap: the middle
//! halves of the two samples are apart, so the difference is larger than the spread within
//! either. Otherwise it says "no clear difference". With fewer than [`MIN_RUNS`] runs on
//! either side there is no verdict.

use super::matrix::{Axes, value_text};
use super::metric::{Better, METRICS, Metric};
use super::stats::{Spread, ratio};
use super::store::BenchRecord;

/// Fewest runs per side for a verdict.
pub const MIN_RUNS: usize = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct CellStats {
    pub cell: usize,
    /// Recorded runs (warm-ups excluded).
    pub runs: usize,
    /// Runs that did not pass.
    pub failed: usize,
    /// Per metric of [`METRICS`], over the completed runs.
    pub figures: Vec<Option<Spread>>,
}

impl CellStats {
    pub fn failure_rate(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.failed as f64 / self.runs as f64)
    }
}

pub fn cell_stats(rec: &BenchRecord) -> Vec<CellStats> {
    rec.cells
        .iter()
        .map(|c| {
            let runs: Vec<_> = rec.runs_of(c.index).collect();
            let completed: Vec<_> = runs.iter().filter(|r| r.completed()).collect();
            let figures = METRICS
                .iter()
                .map(|m| {
                    let v: Vec<f64> = completed
                        .iter()
                        .filter_map(|r| m.value(&r.figures))
                        .collect();
                    Spread::of(&v)
                })
                .collect();
            CellStats {
                cell: c.index,
                runs: runs.len(),
                failed: runs.iter().filter(|r| r.failed()).count(),
                figures,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The interquartile ranges overlap.
    NoClearDifference,
    /// B's median is higher than A's; the ratio B/A.
    Higher(f64),
    Lower(f64),
    /// Fewer than [`MIN_RUNS`] runs with this figure on a side.
    TooFewRuns,
    /// A side has no value for this figure.
    Missing,
}

pub fn verdict(a: Option<&Spread>, b: Option<&Spread>) -> Verdict {
    let (Some(a), Some(b)) = (a, b) else {
        return Verdict::Missing;
    };
    if a.n < MIN_RUNS || b.n < MIN_RUNS {
        return Verdict::TooFewRuns;
    }
    if a.iqr_overlaps(b) {
        return Verdict::NoClearDifference;
    }
    let r = ratio(a.median, b.median).unwrap_or(f64::INFINITY);
    if b.median > a.median {
        Verdict::Higher(r)
    } else {
        Verdict::Lower(r)
    }
}

impl Verdict {
    /// `floodsub 23.1% lower (better)`, `no clear difference`.
    pub fn describe(&self, b_name: &str, metric: &Metric) -> String {
        let pct = |r: f64| {
            if r.is_finite() {
                format!("{:.1}%", (r - 1.0).abs() * 100.0)
            } else {
                "much".into()
            }
        };
        let judged = |higher: bool| {
            let better = (metric.better == Better::Higher) == higher;
            if better { "better" } else { "worse" }
        };
        match *self {
            Verdict::NoClearDifference => "no clear difference".into(),
            Verdict::Higher(r) => format!("{b_name} {} higher ({})", pct(r), judged(true)),
            Verdict::Lower(r) => format!("{b_name} {} lower ({})", pct(r), judged(false)),
            Verdict::TooFewRuns => format!("too few runs (< {MIN_RUNS})"),
            Verdict::Missing => "n/a".into(),
        }
    }

    /// Whether B is better on this metric (`None`: no clear difference or no verdict).
    pub fn b_better(&self, metric: &Metric) -> Option<bool> {
        match self {
            Verdict::Higher(_) => Some(metric.better == Better::Higher),
            Verdict::Lower(_) => Some(metric.better == Better::Lower),
            _ => None,
        }
    }
}

/// Variant B against variant A in one slice.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The slice (`hosts=5 messages=20`).
    pub slice: String,
    pub a_cell: usize,
    pub b_cell: usize,
    pub a_name: String,
    pub b_name: String,
}

/// Every (slice, B) pair, in cell order. Empty when the matrix compares nothing.
pub fn pairs(rec: &BenchRecord, axes: &Axes) -> Vec<Pair> {
    let Some(param) = &axes.compare else {
        return Vec::new();
    };
    let Some(values) = rec.matrix.params.get(param) else {
        return Vec::new();
    };
    let Some(a_value) = values.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in rec.cells.iter().filter(|c| c.get(param) == Some(a_value)) {
        let slice = axes.slice_key(a);
        for b in rec
            .cells
            .iter()
            .filter(|c| c.index != a.index && axes.slice_key(c) == slice)
        {
            out.push(Pair {
                slice: slice.clone(),
                a_cell: a.index,
                b_cell: b.index,
                a_name: value_text(a_value),
                b_name: b.get(param).map(value_text).unwrap_or_default(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[f64]) -> Spread {
        Spread::of(v).unwrap()
    }

    #[test]
    fn verdicts() {
        let lat = &METRICS.iter().find(|m| m.id == "latency_p50").unwrap();
        let a = s(&[10.0, 11.0, 12.0, 13.0, 14.0]); // IQR [11, 13], median 12
        let b = s(&[14.0, 15.0, 15.0, 16.0, 17.0]); // IQR [15, 16], median 15
        let v = verdict(Some(&a), Some(&b));
        assert_eq!(v, Verdict::Higher(1.25));
        assert_eq!(v.describe("floodsub", lat), "floodsub 25.0% higher (worse)");
        assert_eq!(v.b_better(lat), Some(false));
        let v = verdict(Some(&b), Some(&a));
        assert_eq!(v, Verdict::Lower(0.8));
        assert_eq!(v.describe("x", lat), "x 20.0% lower (better)");

        // Medians differ by 10% but the IQRs overlap: within the spread.
        let c = s(&[9.0, 12.0, 13.2, 14.0, 20.0]); // IQR [12, 14]
        assert_eq!(verdict(Some(&a), Some(&c)), Verdict::NoClearDifference);
        assert_eq!(
            verdict(Some(&a), Some(&c)).describe("x", lat),
            "no clear difference"
        );

        assert_eq!(
            verdict(Some(&a), Some(&s(&[100.0, 101.0]))),
            Verdict::TooFewRuns
        );
        assert_eq!(verdict(Some(&a), None), Verdict::Missing);

        let ratio_metric = METRICS.iter().find(|m| m.id == "delivery_ratio").unwrap();
        assert_eq!(
            Verdict::Lower(0.9).describe("b", ratio_metric),
            "b 10.0% lower (worse)"
        );
    }
}
