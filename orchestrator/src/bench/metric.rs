//! The figures a bench charts and compares, in one table: name, unit, which direction is
//! better, and how to read it from a run's figures.

use super::store::Figures;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// File name of its chart (`charts/<id>.svg`) and CSV column.
    pub id: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub better: Better,
    /// Draw the y axis from zero (false where the interesting part is a narrow band near 1).
    pub from_zero: bool,
    /// Number of decimals in tables.
    pub decimals: usize,
    get: fn(&Figures) -> Option<f64>,
}

impl Metric {
    pub fn value(&self, f: &Figures) -> Option<f64> {
        (self.get)(f).filter(|v| v.is_finite())
    }

    /// `12.34 ms`.
    pub fn format(&self, v: f64) -> String {
        if self.unit.is_empty() {
            format!("{v:.*}", self.decimals)
        } else {
            format!("{v:.*} {}", self.decimals, self.unit)
        }
    }

    pub fn axis_label(&self) -> String {
        if self.unit.is_empty() {
            self.title.to_string()
        } else {
            format!("{} ({})", self.title, self.unit)
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Per-run metrics, in report order. The failure rate is a per-cell figure (see
/// [`FAILURE_RATE_ID`]).
pub const METRICS: &[Metric] = &[
    Metric {
        id: "duration",
        title: "Run duration",
        unit: "s",
        better: Better::Lower,
        from_zero: true,
        decimals: 2,
        get: |f| Some(f.duration_s),
    },
    Metric {
        id: "time_to_ready",
        title: "Launch to fleet ready",
        unit: "ms",
        better: Better::Lower,
        from_zero: true,
        decimals: 0,
        get: |f| f.launch_to_ready_ms,
    },
    Metric {
        id: "delivery_ratio",
        title: "Delivery ratio",
        unit: "",
        better: Better::Higher,
        from_zero: false,
        decimals: 4,
        get: |f| f.delivery_ratio,
    },
    Metric {
        id: "latency_p50",
        title: "Latency p50",
        unit: "ms",
        better: Better::Lower,
        from_zero: true,
        decimals: 2,
        get: |f| f.latency_p50_ms,
    },
    Metric {
        id: "latency_p99",
        title: "Latency p99",
        unit: "ms",
        better: Better::Lower,
        from_zero: true,
        decimals: 2,
        get: |f| f.latency_p99_ms,
    },
    Metric {
        id: "peak_rss_node",
        title: "Peak RSS per node (median over nodes)",
        unit: "MiB",
        better: Better::Lower,
        from_zero: true,
        decimals: 2,
        get: |f| f.peak_rss_node_bytes.map(|b| b / MIB),
    },
    Metric {
        id: "peak_rss_total",
        title: "Peak RSS, fleet total",
        unit: "MiB",
        better: Better::Lower,
        from_zero: true,
        decimals: 1,
        get: |f| f.peak_rss_total_bytes.map(|b| b / MIB),
    },
    Metric {
        id: "cpu",
        title: "CPU time, fleet total",
        unit: "s",
        better: Better::Lower,
        from_zero: true,
        decimals: 3,
        get: |f| f.cpu_total_s,
    },
    Metric {
        id: "duplicates",
        title: "Router duplicates per delivered message",
        unit: "",
        better: Better::Lower,
        from_zero: true,
        decimals: 2,
        get: |f| f.duplicates_per_delivery,
    },
    Metric {
        id: "bytes_per_delivery",
        title: "Bytes received per delivered message",
        unit: "B",
        better: Better::Lower,
        from_zero: true,
        decimals: 0,
        get: |f| f.bytes_in_per_delivery,
    },
];

pub const FAILURE_RATE_ID: &str = "failure_rate";
pub const FAILURE_RATE_TITLE: &str = "Failure rate";
