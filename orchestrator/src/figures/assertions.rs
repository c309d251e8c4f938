//! The plan's assertions checked against the summary (`delivery_ratio >= 1.0` …).

use crate::record::{AssertionOutcome, Summary};
use testbed_contract::plan::{Metric, Plan};

/// The summary's value of `metric`; None when the run could not measure it.
pub fn metric_value(metric: Metric, s: &Summary) -> Option<f64> {
    match metric {
        Metric::DeliveryRatio => s.delivery_ratio,
        Metric::LatencyP50Ms => s.latency.map(|l| l.p50_ms),
        Metric::LatencyP90Ms => s.latency.map(|l| l.p90_ms),
        Metric::LatencyP99Ms => s.latency.map(|l| l.p99_ms),
        Metric::LatencyMaxMs => s.latency.map(|l| l.max_ms),
        Metric::Duplicates => Some(s.duplicates as f64),
        Metric::FailedNodes => Some(s.nodes_failed as f64),
        Metric::ReadyTimeMs => s.launch_to_ready_ms,
        Metric::HostSaturated => s.host_saturated.map(|b| f64::from(u8::from(b))),
        Metric::PeakRssMibMax => {
            (s.peak_rss_bytes.count > 0).then(|| s.peak_rss_bytes.max / (1024.0 * 1024.0))
        }
    }
}

/// Every assertion of `plan`, with the value it was checked against.
pub fn check(plan: &Plan, s: &Summary) -> Vec<AssertionOutcome> {
    plan.assertions
        .iter()
        .map(|a| {
            let actual = metric_value(a.metric, s);
            AssertionOutcome {
                assertion: a.to_string(),
                actual,
                passed: actual.is_some_and(|v| a.op.holds(v, a.value)),
            }
        })
        .collect()
}
