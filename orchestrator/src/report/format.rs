//! How the reports write numbers and where they put charts, shared by every section.

/// Where a run's charts go, relative to its folder (report.md links them).
pub const CHARTS_DIR: &str = "charts";

/// Reasons listed in "Why it did not pass"; a fleet failing as a whole (300 nodes with the
/// same fault) would otherwise bury the page. run.json keeps every one.
pub const REASONS_SHOWN: usize = 20;

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
