//! `report.md`: the summary a person reads first, readable on GitHub.

use super::{mib, ms};
use crate::record::{NodeStatus, RunRecord, Status};
use std::fmt::Write;

pub fn render(r: &RunRecord) -> String {
    let mut o = String::new();
    let s = &r.summary;
    let verdict = match r.outcome.status {
        Status::Passed => "PASSED",
        Status::AssertionFailed => "FAILED (assertion)",
        Status::NodeFailed => "FAILED (node failure)",
        Status::Timeout => "FAILED (timeout)",
        Status::Interrupted => "INTERRUPTED",
        Status::Error => "ERROR",
    };
    let _ = writeln!(o, "# {} — {verdict}\n", r.plan_name);
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| run | `{}` |", r.run_id);
    let _ = writeln!(o, "| plan | `{}` |", r.plan_file);
    if !r.params.is_empty() {
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(o, "| parameters | {} |", params.join(", "));
    }
    let _ = writeln!(o, "| started | {} |", r.started_at);
    let _ = writeln!(o, "| duration | {:.2} s |", r.duration_s);
    let _ = writeln!(o, "| runner | {} |", r.runner);
    let _ = writeln!(
        o,
        "| host | {} cores, {} ({}), kernel {} |",
        r.host.cpus,
        mib(r.host.memory_bytes as f64).replace("MiB", "MiB RAM"),
        r.host.cpu_model,
        r.host.kernel
    );
    let _ = writeln!(o, "| command | `{}` |", r.command.join(" "));
    if !r.outcome.reasons.is_empty() {
        let _ = writeln!(o, "\n## Why it did not pass\n");
        let (shown, more) = super::shown_reasons(r);
        for reason in shown {
            let _ = writeln!(o, "- {reason}");
        }
        if more > 0 {
            let _ = writeln!(o, "- … and {more} more (run.json `outcome.reasons`)");
        }
    }

    let _ = writeln!(o, "\n## Summary\n");
    let _ = writeln!(o, "| figure | value | samples |\n|---|---|---|");
    let ratio = s
        .delivery_ratio
        .map_or("n/a (nothing expected)".to_string(), |v| format!("{v:.6}"));
    let _ = writeln!(
        o,
        "| delivery ratio | **{ratio}** ({} of {} expected deliveries) | {} receivers |",
        s.delivered,
        s.expected_deliveries,
        s.nodes - s.nodes_without_result
    );
    match &s.latency {
        Some(l) => {
            let _ = writeln!(
                o,
                "| delivery latency p50 / p90 / p99 / max | {} / {} / {} / {} | {} deliveries |",
                ms(l.p50_ms),
                ms(l.p90_ms),
                ms(l.p99_ms),
                ms(l.max_ms),
                l.count
            );
        }
        None => {
            let _ = writeln!(o, "| delivery latency | n/a (no deliveries) | 0 |");
        }
    }
    let _ = writeln!(
        o,
        "| messages published | {} | {} publishers |",
        s.messages_published,
        count_publishers(r)
    );
    if let Some(rate) = s.publish_rate_per_s {
        let _ = writeln!(
            o,
            "| publish rate | {rate:.1} msg/s | first to last publish |"
        );
    }
    if let Some(rate) = s.delivery_rate_per_s {
        let _ = writeln!(
            o,
            "| delivery rate | {rate:.1} deliveries/s | first publish to settled |"
        );
    }
    let _ = writeln!(
        o,
        "| duplicate deliveries (application) | {} | |",
        s.duplicates
    );
    if let Some(d) = s.router_duplicates {
        let _ = writeln!(
            o,
            "| duplicates filtered by the router | {d} ({} per delivery) | |",
            s.router_duplicates_per_delivery
                .map_or("n/a".into(), |v| format!("{v:.2}"))
        );
    }
    if s.unexpected_deliveries > 0 {
        let _ = writeln!(
            o,
            "| deliveries to non-subscribers | {} | |",
            s.unexpected_deliveries
        );
    }
    // The finish acks' counters (run.json `nodes[].finish_info`): shown only when non-zero,
    // as each one means a figure above left something out.
    for (key, what) in [
        (
            "malformed_payloads",
            "deliveries with a malformed payload (not counted)",
        ),
        (
            "clamped_latencies",
            "latencies clamped to 0 (received before their publish time)",
        ),
        (
            "router_failed_sends",
            "copies the router dropped (peer's send queue full)",
        ),
    ] {
        let (total, nodes) = finish_counter(r, key);
        if total > 0 {
            let _ = writeln!(o, "| {what} | {total} | {nodes} nodes |");
        }
    }
    let p = &s.peak_rss_bytes;
    let _ = writeln!(
        o,
        "| peak RSS per node, median / max | {} / {} | {} nodes |",
        mib(p.median),
        mib(p.max),
        p.count
    );
    let _ = writeln!(
        o,
        "| peak RSS, fleet total (sum of per-node peaks) | {} | {} nodes |",
        mib(p.total),
        p.count
    );
    let c = &s.cpu_s;
    let _ = writeln!(
        o,
        "| CPU per node, median / max | {:.3} s / {:.3} s | {} nodes |",
        c.median, c.max, c.count
    );
    let _ = writeln!(o, "| CPU, fleet total | {:.2} s | |", c.total);
    if let Some(t) = s.launch_to_ready_ms {
        let _ = writeln!(o, "| launch to fleet ready | {} | |", ms(t));
    }
    if let Some(m) = &s.time_to_mesh_ms {
        let _ = writeln!(
            o,
            "| time to mesh per node, median / max | {} / {} | {} nodes |",
            ms(m.median),
            ms(m.max),
            m.count
        );
    }
    if let (Some(i), Some(out)) = (s.bytes_in, s.bytes_out) {
        let _ = writeln!(
            o,
            "| transport bytes in / out | {} / {} | |",
            mib(i as f64),
            mib(out as f64)
        );
    }
    let _ = writeln!(
        o,
        "| orchestrator CPU / peak RSS | {:.2} s / {} | |",
        s.orchestrator_cpu_s,
        mib(s.orchestrator_peak_rss_bytes as f64)
    );
    if s.nodes_failed > 0 {
        let _ = writeln!(
            o,
            "| failed nodes | **{}** of {} | |",
            s.nodes_failed, s.nodes
        );
    }

    if !r.assertions.is_empty() {
        let _ = writeln!(
            o,
            "\n## Assertions\n\n| assertion | actual | result |\n|---|---|---|"
        );
        for a in &r.assertions {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} |",
                a.assertion,
                a.actual.map_or("n/a".into(), |v| format!("{v:.6}")),
                if a.passed { "pass" } else { "**FAIL**" }
            );
        }
    }

    if let Some(churn) = crate::churn::report::markdown(r) {
        o.push('\n');
        o.push_str(&churn);
    }

    let _ = writeln!(
        o,
        "\n## Phases\n\n| phase | started | duration | result | note |\n|---|---|---|---|---|"
    );
    for p in &r.phases {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            p.kind,
            ms(p.started_ms),
            ms(p.duration_ms),
            if p.ok { "ok" } else { "**failed**" },
            p.note.clone().unwrap_or_default()
        );
    }

    if r.group_pairs.len() > 1 {
        let _ = writeln!(
            o,
            "\n## By group (origin → receiver)\n\n| origin → receiver | delivered / expected | p50 | p99 | samples |\n|---|---|---|---|---|"
        );
        for g in &r.group_pairs {
            let (p50, p99, n) = g.latency.map_or(("n/a".into(), "n/a".into(), 0), |l| {
                (ms(l.p50_ms), ms(l.p99_ms), l.count)
            });
            let _ = writeln!(
                o,
                "| {} → {} | {} / {} | {p50} | {p99} | {n} |",
                g.origin_group, g.receiver_group, g.delivered, g.expected
            );
        }
    }

    // Only when more than one implementation ran (the figures are stored only then).
    o.push_str(&crate::by_implementation::render_markdown(r));

    network_section(&mut o, r);
    if s.delivery_over_time.len() > 1 {
        let _ = writeln!(
            o,
            "\n## Delivery over time\n\nBy publish time, seconds since the run started.\n\n| published | delivered / expected | ratio |\n|---|---|---|"
        );
        for b in &s.delivery_over_time {
            let _ = writeln!(
                o,
                "| {:.0}–{:.0} s | {} / {} | {:.3} |",
                b.from_s,
                b.to_s,
                b.delivered,
                b.expected,
                b.delivered as f64 / b.expected.max(1) as f64
            );
        }
    }
    o.push_str(&super::receive_time::markdown(r));

    let failed: Vec<_> = r
        .nodes
        .iter()
        // Peers removed on purpose (churn) are listed in the churn section.
        .filter(|n| !matches!(n.status, NodeStatus::Ok | NodeStatus::Removed))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            o,
            "\n## Nodes that did not finish normally\n\n| node | group | status | last state | why | log |\n|---|---|---|---|---|---|"
        );
        for n in failed.iter().take(100) {
            let _ = writeln!(
                o,
                "| {} | {} | {:?} | {} | {} | [{}]({}) |",
                n.index,
                n.group,
                n.status,
                n.last_state.as_str(),
                n.failure.clone().unwrap_or_default(),
                n.log,
                n.log
            );
        }
        if failed.len() > 100 {
            let _ = writeln!(o, "\n… and {} more (see run.json).", failed.len() - 100);
        }
    }
    o.push_str(&crate::telemetry::report::markdown(r));
    let _ = writeln!(
        o,
        "\n---\nAll figures are measured in this run; `run.json` beside this file holds every node's raw result. See docs/report-format.md for how each figure is computed."
    );
    o
}

/// Sum of one finish-ack counter over the nodes, and how many nodes reported it non-zero.
fn finish_counter(r: &RunRecord, key: &str) -> (u64, usize) {
    r.nodes
        .iter()
        .filter_map(|n| n.finish_info.as_ref()?.get(key)?.as_u64())
        .filter(|&v| v > 0)
        .fold((0, 0), |(t, c), v| (t + v, c + 1))
}

fn count_publishers(r: &RunRecord) -> usize {
    r.nodes
        .iter()
        .filter(|n| n.result.as_ref().is_some_and(|x| !x.published.is_empty()))
        .count()
}

/// The configured network next to what was measured per group pair.
fn network_section(o: &mut String, r: &RunRecord) {
    let Some(net) = r.extra.get("network") else {
        return;
    };
    let _ = writeln!(
        o,
        "\n## Network\n\nConfigured one-way profile per direction, and what deliveries measured (a delivery may take several hops).\n\n| from → to | latency | jitter | loss | bandwidth | delivered / expected | measured p50 | measured p99 |\n|---|---|---|---|---|---|---|---|"
    );
    let links = net
        .get("links")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    for l in links {
        let from = l["from"].as_str().unwrap_or("?");
        let to = l["to"].as_str().unwrap_or("?");
        let p = &l["profile"];
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let pair = r
            .group_pairs
            .iter()
            .find(|g| g.origin_group == from && g.receiver_group == to);
        let (dl, p50, p99) = pair.map_or(
            ("n/a".to_string(), "n/a".to_string(), "n/a".to_string()),
            |g| {
                (
                    format!("{} / {}", g.delivered, g.expected),
                    g.latency.map_or("n/a".into(), |l| ms(l.p50_ms)),
                    g.latency.map_or("n/a".into(), |l| ms(l.p99_ms)),
                )
            },
        );
        let _ = writeln!(
            o,
            "| {from} → {to} | {} | {} | {}% | {} | {dl} | {p50} | {p99} |",
            text(&p["latency"]),
            text(&p["jitter"]),
            text(&p["loss"]),
            text(&p["bandwidth"])
        );
    }
    if let Some(events) = net["section"]["events"]
        .as_array()
        .filter(|e| !e.is_empty())
    {
        let zero = net["events_zero_ms"].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            o,
            "\nTimed events (their clock started {} after the first launch):\n",
            ms(zero)
        );
        for e in events {
            let _ = writeln!(o, "- `{e}`");
        }
    }
    if let Some(stats) = r.extra.get("shaper") {
        let _ = writeln!(o, "\nShaper counters: `{stats}`");
    }
}
