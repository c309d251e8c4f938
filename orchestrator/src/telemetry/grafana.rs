//! `orchestrator grafana-dashboard`: a Grafana dashboard (JSON model, importable through
//! Dashboards → New → Import) over the metrics of [`super::metrics`]. The data source is an
//! input chosen at import (`${DS_PROMETHEUS}`).

use super::metrics::PREFIX;
use serde_json::{Value, json};

struct Panel {
    title: &'static str,
    kind: &'static str,
    unit: &'static str,
    /// (PromQL, legend)
    targets: Vec<(String, &'static str)>,
    stacked: bool,
}

fn m(name: &str) -> String {
    format!("{PREFIX}_{name}")
}

fn panels() -> Vec<Panel> {
    vec![
        Panel {
            title: "Nodes by lifecycle state",
            kind: "timeseries",
            unit: "short",
            targets: vec![(format!("sum by (state) ({})", m("nodes")), "{{state}}")],
            stacked: true,
        },
        Panel {
            title: "Failed nodes",
            kind: "stat",
            unit: "short",
            targets: vec![(m("nodes_failed"), "failed")],
            stacked: false,
        },
        Panel {
            title: "Connections",
            kind: "timeseries",
            unit: "short",
            targets: vec![(m("connections"), "connections")],
            stacked: false,
        },
        Panel {
            title: "Subscribers per topic",
            kind: "timeseries",
            unit: "short",
            targets: vec![
                (m("topic_subscribers"), "{{topic}}"),
                (m("topic_mesh_peers"), "mesh peers {{topic}}"),
            ],
            stacked: false,
        },
        Panel {
            title: "Messages per second",
            kind: "timeseries",
            unit: "ops",
            targets: vec![
                (
                    format!("rate({}[$__rate_interval])", m("messages_published_total")),
                    "published",
                ),
                (
                    format!("rate({}[$__rate_interval])", m("messages_delivered_total")),
                    "delivered",
                ),
                (
                    format!("rate({}[$__rate_interval])", m("messages_duplicate_total")),
                    "duplicates",
                ),
            ],
            stacked: false,
        },
        Panel {
            title: "Messages (totals)",
            kind: "stat",
            unit: "short",
            targets: vec![
                (m("messages_published_total"), "published"),
                (m("messages_delivered_total"), "delivered"),
                (m("messages_missing"), "missing"),
                (m("messages_duplicate_total"), "duplicates"),
            ],
            stacked: false,
        },
        Panel {
            title: "Delivery latency (end of run)",
            kind: "timeseries",
            unit: "s",
            targets: vec![
                (
                    format!(
                        "histogram_quantile(0.5, sum by (le) ({}))",
                        m("delivery_latency_seconds_bucket")
                    ),
                    "p50",
                ),
                (
                    format!(
                        "histogram_quantile(0.99, sum by (le) ({}))",
                        m("delivery_latency_seconds_bucket")
                    ),
                    "p99",
                ),
            ],
            stacked: false,
        },
        Panel {
            title: "RSS per node",
            kind: "timeseries",
            unit: "bytes",
            targets: vec![(m("node_rss_bytes"), "{{node}}")],
            stacked: false,
        },
        Panel {
            title: "CPU per node",
            kind: "timeseries",
            unit: "percentunit",
            targets: vec![(
                format!("rate({}[$__rate_interval])", m("node_cpu_seconds_total")),
                "{{node}}",
            )],
            stacked: false,
        },
        Panel {
            title: "Peers per node",
            kind: "timeseries",
            unit: "short",
            targets: vec![(m("node_connected_peers"), "{{node}}")],
            stacked: false,
        },
    ]
}

/// The dashboard JSON.
pub fn dashboard() -> Value {
    let ds = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let panels: Vec<Value> = panels()
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let targets: Vec<Value> = p
                .targets
                .iter()
                .enumerate()
                .map(|(j, (expr, legend))| {
                    json!({"datasource": ds, "expr": expr, "legendFormat": legend, "refId": char::from(b'A' + j as u8).to_string()})
                })
                .collect();
            let mut custom = json!({});
            if p.stacked {
                custom = json!({"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 60});
            }
            json!({
                "id": i + 1,
                "type": p.kind,
                "title": p.title,
                "datasource": ds,
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
                "fieldConfig": {"defaults": {"unit": p.unit, "custom": custom}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": targets,
            })
        })
        .collect();
    json!({
        "__inputs": [{
            "name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
            "pluginId": "prometheus", "pluginName": "Prometheus"
        }],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}
        ],
        "title": "pubsub-testbed run",
        "uid": "pubsub-testbed-run",
        "description": "Generated by `orchestrator grafana-dashboard`: the metrics the orchestrator serves at /metrics during a run.",
        "tags": ["pubsub-testbed", "libp2p"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::metric_names;

    #[test]
    fn every_query_names_a_served_metric() {
        let d = dashboard();
        let names = metric_names();
        let panels = d["panels"].as_array().unwrap();
        assert!(panels.len() >= 8);
        for p in panels {
            for t in p["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                let used: Vec<&str> = expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with(PREFIX))
                    .collect();
                assert!(!used.is_empty(), "{expr}");
                for u in used {
                    assert!(names.iter().any(|n| n == u), "{u} in {expr} is not served");
                }
            }
        }
        // Panel ids are unique.
        let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
        ids.dedup();
        assert_eq!(ids.len(), panels.len());
    }
}
