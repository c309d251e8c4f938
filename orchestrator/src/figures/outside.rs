//! Memory and CPU as the orchestrator sampled them from `/proc`, and the nodes' own figures
//! cross-checked against them.

use super::summary::dist;
use crate::record::{NodeRecord, Summary};

/// The orchestrator samples a node at most every few seconds, so its peak RSS may be below
/// the node's own (VmHWM catches every spike); a sampled peak above the node's own beyond
/// this fraction (plus [`RSS_SLACK_BYTES`]) means one of them is wrong.
pub const RSS_TOLERANCE: f64 = 0.10;
pub const RSS_SLACK_BYTES: u64 = 1 << 20;
/// CPU time only grows: the last sample, taken before the node's final result, may not
/// exceed the node's own total by more than this fraction plus [`CPU_SLACK_S`].
pub const CPU_TOLERANCE: f64 = 0.10;
pub const CPU_SLACK_S: f64 = 0.05;

/// Per-node PSS/USS distributions and the anomalies, from the nodes' outside samples.
pub fn add_to(s: &mut Summary, nodes: &[NodeRecord]) {
    let sampled: Vec<_> = nodes
        .iter()
        .filter_map(|n| Some((n, n.outside.as_ref().filter(|o| o.samples > 0)?)))
        .collect();
    if sampled.is_empty() {
        return;
    }
    s.pss_bytes = Some(dist(sampled.iter().map(|(_, o)| o.peak_pss_bytes as f64)));
    s.uss_bytes = Some(dist(sampled.iter().map(|(_, o)| o.peak_uss_bytes as f64)));
    for (n, o) in &sampled {
        let Some(r) = &n.result else { continue };
        let rss_limit = r.peak_rss_bytes as f64 * (1.0 + RSS_TOLERANCE) + RSS_SLACK_BYTES as f64;
        if o.peak_rss_bytes as f64 > rss_limit {
            s.resource_anomalies.push(format!(
                "node {}: sampled RSS {} B above its own peak RSS {} B",
                n.index, o.peak_rss_bytes, r.peak_rss_bytes
            ));
        }
        let own_cpu = r.cpu_ns as f64 / 1e9;
        if o.cpu_s > own_cpu * (1.0 + CPU_TOLERANCE) + CPU_SLACK_S {
            s.resource_anomalies.push(format!(
                "node {}: sampled CPU {:.3} s above its own total {own_cpu:.3} s",
                n.index, o.cpu_s
            ));
        }
    }
}
