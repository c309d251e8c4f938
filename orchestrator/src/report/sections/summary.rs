//! "Summary": every headline figure with its sample count; "Assertions": the plan's
//! assertions against them.

use crate::record::{FinishInfo, RunRecord};
use crate::report::doc::{Doc, Span, Table};
use crate::report::format::{mib, ms};

/// A counter of the finish acks (run.json `nodes[].finish_info`).
type Counter = fn(&FinishInfo) -> Option<u64>;

/// The finish acks' counters, shown only when non-zero, as each one means a figure above
/// left something out.
const FINISH_COUNTERS: [(Counter, &str); 3] = [
    (
        |f| f.malformed_payloads,
        "deliveries with a malformed payload (not counted)",
    ),
    (
        |f| f.clamped_latencies,
        "latencies clamped to 0 (received before their publish time)",
    ),
    (
        |f| f.router_failed_sends,
        "copies the router dropped (peer's send queue full)",
    ),
];

fn row(figure: &str, value: Span, samples: impl Into<String>) -> Vec<Span> {
    vec![Span::text(figure), value, Span::text(samples)]
}

fn text(s: impl Into<String>) -> Span {
    Span::text(s)
}

pub fn add_to(doc: &mut Doc, r: &RunRecord) {
    let s = &r.summary;
    let mut rows = Vec::new();
    let ratio = s
        .delivery_ratio
        .map_or("n/a (nothing expected)".to_string(), |v| format!("{v:.6}"));
    rows.push(row(
        "delivery ratio",
        Span::Seq(vec![
            Span::Strong(ratio),
            text(format!(
                " ({} of {} expected deliveries)",
                s.delivered, s.expected_deliveries
            )),
        ]),
        format!("{} receivers", s.nodes - s.nodes_without_result),
    ));
    if s.unverifiable_deliveries > 0 {
        rows.push(row(
            "unverifiable deliveries",
            Span::Strong(s.unverifiable_deliveries.to_string()),
            format!(
                "to {} receivers whose result is missing (not in the ratio)",
                s.nodes_without_result
            ),
        ));
    }
    let from = if s.paced_messages == 0 {
        "from send time (back-to-back publishing)"
    } else if s.paced_messages < s.messages_published {
        "from the due time (paced), send time (back to back)"
    } else {
        "from the due time (paced publishing)"
    };
    rows.push(match &s.latency {
        Some(l) => row(
            &format!("delivery latency {from}, p50 / p90 / p99 / max"),
            text(format!(
                "{} / {} / {} / {}",
                ms(l.p50_ms),
                ms(l.p90_ms),
                ms(l.p99_ms),
                ms(l.max_ms)
            )),
            format!("{} deliveries", l.count),
        ),
        None => row("delivery latency", text("n/a (no deliveries)"), "0"),
    });
    rows.extend(super::host_load::row(r).map(Vec::from));
    rows.extend(super::loop_lag::rows(r).into_iter().map(Vec::from));
    rows.extend(super::hops::row(r).map(Vec::from));
    if let Some(l) = s
        .latency_since_send
        .as_ref()
        .filter(|_| s.paced_messages > 0)
    {
        rows.push(row(
            "latency from send time (publishers' lag left out), p50 / p99 / max",
            text(format!(
                "{} / {} / {}",
                ms(l.p50_ms),
                ms(l.p99_ms),
                ms(l.max_ms)
            )),
            format!("{} deliveries", l.count),
        ));
    }
    for g in &s.publish_lag {
        rows.push(row(
            &format!(
                "publisher lag (send − due), group {}, p50 / p99 / max",
                g.group
            ),
            text(format!(
                "{} / {} / {}",
                ms(g.p50_ms),
                ms(g.p99_ms),
                ms(g.max_ms)
            )),
            format!("{} messages, {} publishers", g.messages, g.publishers),
        ));
    }
    rows.push(row(
        "messages published",
        text(s.messages_published.to_string()),
        format!("{} publishers", publishers(r)),
    ));
    if let Some(rate) = s.publish_rate_per_s {
        rows.push(row(
            "publish rate",
            text(format!("{rate:.1} msg/s")),
            "first to last publish",
        ));
    }
    if let Some(rate) = s.delivery_rate_per_s {
        rows.push(row(
            "delivery rate",
            text(format!("{rate:.1} deliveries/s")),
            "first publish to settled",
        ));
    }
    rows.push(row(
        "duplicate deliveries (application)",
        text(s.duplicates.to_string()),
        "",
    ));
    if let Some(d) = s.router_duplicates {
        let per = s
            .router_duplicates_per_delivery
            .map_or("n/a".into(), |v| format!("{v:.2}"));
        rows.push(row(
            "duplicates filtered by the router",
            text(format!("{d} ({per} per delivery)")),
            "",
        ));
    }
    if s.unexpected_deliveries > 0 {
        rows.push(row(
            "deliveries to non-subscribers",
            text(s.unexpected_deliveries.to_string()),
            "",
        ));
    }
    for (key, what) in FINISH_COUNTERS {
        let (total, nodes) = finish_counter(r, key);
        if total > 0 {
            rows.push(row(what, text(total.to_string()), format!("{nodes} nodes")));
        }
    }
    resources(r, &mut rows);
    doc.h2("Summary");
    // Before the figures, so nobody reads a latency without it.
    super::host_load::add_verdict(doc, r);
    doc.table(Table {
        head: ["figure", "value", "samples"].map(String::from).to_vec(),
        rows,
    });
}

/// Memory, CPU, readiness, mesh, traffic, the orchestrator itself, failed nodes.
fn resources(r: &RunRecord, rows: &mut Vec<Vec<Span>>) {
    let s = &r.summary;
    let p = &s.peak_rss_bytes;
    rows.push(row(
        "peak RSS per node, median / max",
        text(format!("{} / {}", mib(p.median), mib(p.max))),
        format!("{} nodes", p.count),
    ));
    rows.push(row(
        "peak RSS, fleet total (sum of per-node peaks; shared pages counted in every node)",
        text(mib(p.total)),
        format!("{} nodes", p.count),
    ));
    sampled_memory(s, rows);
    let c = &s.cpu_s;
    rows.push(row(
        "CPU per node, median / max",
        text(format!("{:.3} s / {:.3} s", c.median, c.max)),
        format!("{} nodes", c.count),
    ));
    rows.push(row(
        "CPU, fleet total",
        text(format!("{:.2} s", c.total)),
        "",
    ));
    let waited = s.meshed_nodes as usize + s.not_meshed.len() + s.mesh_unknown as usize;
    if let Some(t) = s.launch_to_ready_ms {
        let note = if waited > 0 {
            format!("{} of {waited} nodes meshed", s.meshed_nodes)
        } else {
            String::new()
        };
        rows.push(row("launch to fleet ready", text(ms(t)), note));
    }
    if let Some(m) = &s.time_to_mesh_ms {
        rows.push(row(
            "time to mesh per meshed node, median / max",
            text(format!("{} / {}", ms(m.median), ms(m.max))),
            format!("{} nodes", m.count),
        ));
    }
    if !s.not_meshed.is_empty() {
        rows.push(row(
            "nodes that went ahead without a mesh",
            text(s.not_meshed.len().to_string()),
            format!("nodes {}", index_list(&s.not_meshed)),
        ));
    }
    if s.mesh_unknown > 0 {
        rows.push(row(
            "nodes that do not say whether they meshed (protocol 1)",
            text(s.mesh_unknown.to_string()),
            "left out of time to mesh",
        ));
    }
    if let (Some(i), Some(out)) = (s.bytes_in, s.bytes_out) {
        rows.push(row(
            "transport bytes in / out",
            text(format!("{} / {}", mib(i as f64), mib(out as f64))),
            "",
        ));
    }
    rows.push(row(
        "orchestrator CPU / peak RSS, this run",
        text(format!(
            "{:.2} s / {}",
            s.orchestrator_cpu_s,
            mib(s.orchestrator_peak_rss_bytes as f64)
        )),
        "all threads, launch to record",
    ));
    if let Some(cpu) = s.sampler_cpu_s {
        rows.push(row(
            "of which the /proc sampler thread",
            text(format!("{cpu:.3} s")),
            "",
        ));
    }
    if s.nodes_failed > 0 {
        rows.push(row(
            "failed nodes",
            Span::Seq(vec![
                Span::Strong(s.nodes_failed.to_string()),
                text(format!(" of {}", s.nodes)),
            ]),
            "",
        ));
    }
}

pub fn add_assertions(doc: &mut Doc, r: &RunRecord) {
    if r.assertions.is_empty() {
        return;
    }
    doc.h2("Assertions");
    doc.table(Table {
        head: ["assertion", "actual", "result"].map(String::from).to_vec(),
        rows: r
            .assertions
            .iter()
            .map(|a| {
                vec![
                    Span::Code(a.assertion.clone()),
                    text(a.actual.map_or("n/a".into(), |v| format!("{v:.6}"))),
                    if a.passed {
                        text("pass")
                    } else {
                        Span::Strong("FAIL".into())
                    },
                ]
            })
            .collect(),
    });
}

/// Sum of one finish-ack counter over the nodes, and how many nodes reported it non-zero.
fn finish_counter(r: &RunRecord, counter: Counter) -> (u64, usize) {
    r.nodes
        .iter()
        .filter_map(|n| counter(n.finish_info.as_ref()?))
        .filter(|&v| v > 0)
        .fold((0, 0), |(t, c), v| (t + v, c + 1))
}

fn publishers(r: &RunRecord) -> usize {
    r.nodes
        .iter()
        .filter(|n| n.result.as_ref().is_some_and(|x| !x.published.is_empty()))
        .count()
}

/// PSS and USS per node and the fleet's PSS total, from the orchestrator's `/proc` samples;
/// nodes whose own figures disagree with them.
fn sampled_memory(s: &crate::record::Summary, rows: &mut Vec<Vec<Span>>) {
    if let (Some(p), Some(u)) = (&s.pss_bytes, &s.uss_bytes) {
        rows.push(row(
            "peak PSS per node, median / max (sampled from /proc)",
            text(format!("{} / {}", mib(p.median), mib(p.max))),
            format!("{} nodes", p.count),
        ));
        rows.push(row(
            "peak USS per node, median / max (sampled from /proc)",
            text(format!("{} / {}", mib(u.median), mib(u.max))),
            format!("{} nodes", u.count),
        ));
    }
    if let (Some(peak), Some(last)) = (s.fleet_pss_peak_bytes, s.fleet_pss_last_bytes) {
        rows.push(row(
            "PSS, fleet total: largest / last sweep",
            text(format!("{} / {}", mib(peak as f64), mib(last as f64))),
            "sum over one sweep of /proc",
        ));
    }
    for a in &s.resource_anomalies {
        rows.push(row(
            "anomaly: own figure vs /proc",
            Span::Strong(a.clone()),
            "",
        ));
    }
}

/// `0, 3, 7` — the first 20 indices, then how many more.
fn index_list(indices: &[u32]) -> String {
    let mut s = indices
        .iter()
        .take(20)
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if indices.len() > 20 {
        s.push_str(&format!(" and {} more", indices.len() - 20));
    }
    s
}
