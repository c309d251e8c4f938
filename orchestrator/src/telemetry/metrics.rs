//! Live Prometheus metrics of a run, served at `/metrics` while it runs (and for
//! `telemetry.metrics_linger` after it). The fleet pushes each node's latest state and
//! snapshot into a [`LiveMetrics`]; a scrape encodes them with `prometheus-client`. The final
//! exposition is also written beside run.json as `metrics.prom`.
//!
//! Every metric is prefixed `pubsub_testbed_`; docs/observability.md lists them. Figures that
//! only exist once the nodes' final results are in (expected and missing deliveries, the
//! latency histogram) appear when the run ends (`pubsub_testbed_run_finished 1`).

use crate::record::RunRecord;
use crate::record::churn_log::LiveFigures;
use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use testbed_contract::protocol::node_service_name;
use testbed_contract::results::{NodeState, Snapshot};

pub const PREFIX: &str = "pubsub_testbed";
pub const METRICS_FILE: &str = "metrics.prom";

/// Upper bounds (seconds) of the delivery latency histogram's buckets.
pub const LATENCY_BUCKETS_S: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

const STATES: [NodeState; 9] = [
    NodeState::Starting,
    NodeState::Listening,
    NodeState::Connected,
    NodeState::Subscribed,
    NodeState::Ready,
    NodeState::Running,
    NodeState::Draining,
    NodeState::Done,
    NodeState::Failed,
];

#[derive(Debug, Clone)]
struct NodeView {
    name: String,
    group: String,
    state: NodeState,
    failed: bool,
    snapshot: Option<Snapshot>,
    metrics_addr: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Final {
    expected: u64,
    delivered: u64,
    /// (upper bound s, count in this bucket), the last bound +Inf.
    buckets: Vec<(f64, u64)>,
    sum_s: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct View {
    nodes: Vec<NodeView>,
    finished: Option<Final>,
    /// Gauges other features publish (e.g. churn): name → (help, labels → value).
    extra: BTreeMap<String, (String, BTreeMap<Labels, f64>)>,
}

/// One node's latest state, as the fleet pushes it.
#[derive(Debug, Clone, Copy)]
pub struct NodeUpdate<'a> {
    pub index: u32,
    pub group: &'a str,
    pub state: NodeState,
    /// The node has failed (crashed, hung, broke the protocol).
    pub failed: bool,
    /// Where the node serves its own metrics.
    pub metrics_addr: Option<&'a str>,
    /// Its latest counters (the final result's snapshot once there is one).
    pub snapshot: Option<&'a Snapshot>,
}

/// What a scrape sees. Cheap to update: one node at a time.
#[derive(Debug, Default)]
pub struct LiveMetrics {
    view: Mutex<View>,
}

impl LiveMetrics {
    /// The fleet's nodes, before launch: (index, group) of each, in index order.
    pub fn set_nodes<'a>(&self, nodes: impl IntoIterator<Item = (u32, &'a str)>) {
        let mut v = self.view.lock().expect("metrics view");
        v.nodes = nodes
            .into_iter()
            .map(|(index, group)| NodeView {
                name: node_service_name(index),
                group: group.to_string(),
                state: NodeState::Starting,
                failed: false,
                snapshot: None,
                metrics_addr: None,
            })
            .collect();
    }

    /// The nodes' own metrics endpoints (`telemetry.node_metrics`): (service name, HOST:PORT).
    pub fn node_endpoints(&self) -> Vec<(String, String)> {
        let v = self.view.lock().expect("metrics view");
        v.nodes
            .iter()
            .filter_map(|n| Some((n.name.clone(), n.metrics_addr.clone()?)))
            .collect()
    }

    /// The same as Prometheus HTTP service discovery JSON (`http_sd_configs`).
    pub fn node_targets_json(&self) -> String {
        let v = self.view.lock().expect("metrics view");
        let targets: Vec<serde_json::Value> = v
            .nodes
            .iter()
            .filter_map(|n| {
                Some(serde_json::json!({
                    "targets": [n.metrics_addr.clone()?],
                    "labels": {"node": n.name, "group": n.group},
                }))
            })
            .collect();
        serde_json::Value::Array(targets).to_string()
    }

    /// Takes a node's current state, fault and latest counters.
    pub fn on_node(&self, u: NodeUpdate) {
        let mut v = self.view.lock().expect("metrics view");
        // Nodes launched later (churn) join the view.
        while v.nodes.len() <= u.index as usize {
            let i = v.nodes.len() as u32;
            v.nodes.push(NodeView {
                name: node_service_name(i),
                group: u.group.to_string(),
                state: NodeState::Starting,
                failed: false,
                snapshot: None,
                metrics_addr: None,
            });
        }
        let n = &mut v.nodes[u.index as usize];
        n.state = u.state;
        n.failed = u.failed;
        if n.metrics_addr.is_none() {
            n.metrics_addr = u.metrics_addr.map(str::to_string);
        }
        if let Some(s) = u.snapshot
            && n.snapshot.as_ref().is_none_or(|old| old.at_ns <= s.at_ns)
        {
            n.snapshot = Some(s.clone());
        }
    }

    /// Sets a gauge of another feature (churn: live peers, topics …); `labels` may be empty.
    /// Shown as `pubsub_testbed_<name>`.
    pub fn set_gauge(&self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        let mut v = self.view.lock().expect("metrics view");
        let e = v
            .extra
            .entry(name.to_owned())
            .or_insert_with(|| (help.to_owned(), BTreeMap::new()));
        let key = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        e.1.insert(key, value);
    }

    /// The churn phase's live figures as gauges (`pubsub_testbed_churn_*`).
    pub fn set_churn(&self, f: &LiveFigures) {
        let m = self;
        let g = |name: &str, help: &str, v: f64| m.set_gauge(name, help, &[], v);
        g(
            "churn_peers",
            "Churn: peers taking part (launched, not removed, not failed).",
            f.peers as f64,
        );
        g(
            "churn_peers_added",
            "Churn: peers launched by the churn phase so far.",
            f.peers_added as f64,
        );
        g(
            "churn_peers_removed",
            "Churn: peers removed by the churn phase so far.",
            f.peers_removed as f64,
        );
        g("churn_topics", "Churn: topics that exist.", f.topics as f64);
        g(
            "churn_connections",
            "Churn: open connections (from the nodes' snapshots).",
            f.connections as f64,
        );
        g(
            "churn_friendships",
            "Churn: friendships.",
            f.friendships as f64,
        );
        let ppt = "Churn: peers per topic.";
        for (stat, v) in [
            ("min", f.peers_per_topic.min as f64),
            ("median", f.peers_per_topic.median),
            ("max", f.peers_per_topic.max as f64),
        ] {
            m.set_gauge("churn_peers_per_topic", ppt, &[("stat", stat)], v);
        }
        g(
            "churn_messages",
            "Churn: messages published by the churn phase.",
            f.messages as f64,
        );
        g(
            "churn_received",
            "Churn: distinct deliveries since the phase started.",
            f.received as f64,
        );
        g(
            "churn_expected",
            "Churn: deliveries expected so far (orchestrator's record; estimate).",
            f.expected as f64,
        );
        g(
            "churn_missed_estimate",
            "Churn: expected minus received while running (estimate; the report is exact).",
            f.missed_estimate as f64,
        );
        g(
            "churn_events_applied",
            "Churn: events applied.",
            f.events_applied as f64,
        );
        g(
            "churn_events_failed",
            "Churn: events that failed or partly failed.",
            f.events_failed as f64,
        );
    }

    /// The run is over: final figures from the record (delivery counts as in run.json, the
    /// latency histogram merged from every node's result).
    pub fn set_final(&self, record: &RunRecord) {
        let mut merged: Option<Histogram<u64>> = None;
        for n in &record.nodes {
            for l in n.result.iter().flat_map(|r| &r.latency) {
                if let Ok(h) = testbed_contract::histogram::decode(&l.hdr) {
                    match merged.as_mut() {
                        Some(m) => {
                            let _ = m.add(&h);
                        }
                        None => merged = Some(h),
                    }
                }
            }
        }
        let mut f = Final {
            expected: record.summary.expected_deliveries,
            delivered: record.summary.delivered,
            ..Default::default()
        };
        let mut counts = vec![0u64; LATENCY_BUCKETS_S.len() + 1];
        if let Some(h) = merged {
            for it in h.iter_recorded() {
                let us = it.value_iterated_to();
                let n = it.count_at_value();
                let s = us as f64 / 1e6;
                let b = LATENCY_BUCKETS_S
                    .iter()
                    .position(|&ub| s <= ub)
                    .unwrap_or(LATENCY_BUCKETS_S.len());
                counts[b] += n;
                f.sum_s += s * n as f64;
                f.count += n;
            }
        }
        f.buckets = LATENCY_BUCKETS_S
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(counts)
            .collect();
        // The final snapshots of every node (results), so counters match run.json.
        let mut v = self.view.lock().expect("metrics view");
        for n in &record.nodes {
            if let Some(nv) = v.nodes.get_mut(n.index as usize) {
                nv.state = n.last_state;
                nv.failed = n.status != crate::record::NodeStatus::Ok
                    && n.status != crate::record::NodeStatus::Removed;
                if let Some(s) = n
                    .result
                    .as_ref()
                    .and_then(|r| r.last_snapshot.as_ref())
                    .or(n.last_snapshot.as_ref())
                {
                    nv.snapshot = Some(s.clone());
                }
            }
        }
        v.finished = Some(f);
    }

    /// The exposition (OpenMetrics text).
    pub fn encode(self: &Arc<Self>) -> String {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(FleetCollector(self.clone())));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The same exposition in Prometheus' classic text format (0.0.4), for scrapers that do not
/// ask for OpenMetrics and for `promtool check metrics`: a counter's HELP and TYPE name the
/// `_total` series, and the `# UNIT`/`# EOF` lines go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[derive(Debug)]
struct FleetCollector(Arc<LiveMetrics>);

type Labels = Vec<(String, String)>;

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, f64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    if let [(labels, v)] = series
        && labels.is_empty()
    {
        return ConstGauge::new(*v).encode(m);
    }
    for (labels, v) in series {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, f64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    if let [(labels, v)] = series
        && labels.is_empty()
    {
        return ConstCounter::new(*v).encode(m);
    }
    for (labels, v) in series {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Collector for FleetCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let v = self.0.view.lock().expect("metrics view");
        let snaps = || v.nodes.iter().filter_map(|n| n.snapshot.as_ref());

        let by_state: Vec<(Labels, f64)> = STATES
            .iter()
            .map(|s| {
                (
                    l(&[("state", s.as_str())]),
                    v.nodes.iter().filter(|n| n.state == *s).count() as f64,
                )
            })
            .collect();
        gauge(
            &mut enc,
            "nodes",
            "Nodes by lifecycle state (the latest state each node reported).",
            &by_state,
        )?;
        gauge(
            &mut enc,
            "nodes_failed",
            "Nodes that crashed, hung or failed.",
            &[(vec![], v.nodes.iter().filter(|n| n.failed).count() as f64)],
        )?;
        let peers: u64 = snaps().map(|s| u64::from(s.connected_peers)).sum();
        gauge(
            &mut enc,
            "connections",
            "Connections between fleet nodes (connected peers summed over nodes, halved).",
            &[(vec![], peers as f64 / 2.0)],
        )?;

        let mut subs: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for s in snaps() {
            for (t, p) in &s.topics {
                let e = subs.entry(t.as_str()).or_default();
                e.0 += 1;
                e.1 += u64::from(p.mesh);
            }
        }
        let sub_series: Vec<(Labels, f64)> = subs
            .iter()
            .map(|(t, (n, _))| (l(&[("topic", t)]), *n as f64))
            .collect();
        gauge(
            &mut enc,
            "topic_subscribers",
            "Nodes subscribed to each topic.",
            &sub_series,
        )?;
        let mesh_series: Vec<(Labels, f64)> = subs
            .iter()
            .map(|(t, (_, m))| (l(&[("topic", t)]), *m as f64))
            .collect();
        gauge(
            &mut enc,
            "topic_mesh_peers",
            "Mesh peers per topic, summed over nodes.",
            &mesh_series,
        )?;

        let published: u64 = snaps().map(|s| s.published).sum();
        let delivered: u64 = snaps().map(|s| s.received).sum();
        let duplicates: u64 = snaps().map(|s| s.duplicates).sum();
        counter(
            &mut enc,
            "messages_published",
            "Messages published by the fleet.",
            &[(vec![], published as f64)],
        )?;
        counter(
            &mut enc,
            "messages_delivered",
            "Distinct messages delivered to nodes (first deliveries).",
            &[(vec![], delivered as f64)],
        )?;
        counter(
            &mut enc,
            "messages_duplicate",
            "Deliveries of a message a node had already seen.",
            &[(vec![], duplicates as f64)],
        )?;

        gauge(
            &mut enc,
            "run_finished",
            "1 once the run is over and the final figures below are in.",
            &[(vec![], f64::from(u8::from(v.finished.is_some())))],
        )?;
        if let Some(f) = &v.finished {
            gauge(
                &mut enc,
                "messages_expected",
                "Deliveries expected: (message, subscribed receiver) pairs, as in run.json.",
                &[(vec![], f.expected as f64)],
            )?;
            gauge(
                &mut enc,
                "messages_missing",
                "Expected deliveries that did not happen.",
                &[(vec![], f.expected.saturating_sub(f.delivered) as f64)],
            )?;
            let mut m = enc.encode_descriptor(
                "delivery_latency_seconds",
                "Delivery latency (receive - publish), merged from every node's final histogram.",
                None,
                MetricType::Histogram,
            )?;
            m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                f.sum_s, f.count, &f.buckets, None,
            )?;
        }

        let per_node = |get: &dyn Fn(&Snapshot) -> f64| -> Vec<(Labels, f64)> {
            v.nodes
                .iter()
                .filter_map(|n| {
                    n.snapshot
                        .as_ref()
                        .map(|s| (l(&[("node", &n.name), ("group", &n.group)]), get(s)))
                })
                .collect()
        };
        gauge(
            &mut enc,
            "node_rss_bytes",
            "Resident memory of each node process.",
            &per_node(&|s| s.rss_bytes as f64),
        )?;
        counter(
            &mut enc,
            "node_cpu_seconds",
            "CPU time (user + system) of each node process.",
            &per_node(&|s| s.cpu_ns as f64 / 1e9),
        )?;
        gauge(
            &mut enc,
            "node_connected_peers",
            "Peers each node is connected to.",
            &per_node(&|s| f64::from(s.connected_peers)),
        )?;

        for (name, (help, series)) in &v.extra {
            let s: Vec<(Labels, f64)> = series.iter().map(|(k, v)| (k.clone(), *v)).collect();
            gauge(&mut enc, name, help, &s)?;
        }
        Ok(())
    }
}

/// Every metric name a scrape may show (with the suffixes Prometheus stores), for the Grafana
/// dashboard and its test.
pub fn metric_names() -> Vec<String> {
    [
        "nodes",
        "nodes_failed",
        "connections",
        "topic_subscribers",
        "topic_mesh_peers",
        "messages_published_total",
        "messages_delivered_total",
        "messages_duplicate_total",
        "run_finished",
        "messages_expected",
        "messages_missing",
        "delivery_latency_seconds_bucket",
        "delivery_latency_seconds_sum",
        "delivery_latency_seconds_count",
        "node_rss_bytes",
        "node_cpu_seconds_total",
        "node_connected_peers",
    ]
    .iter()
    .map(|n| format!("{PREFIX}_{n}"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = Arc::new(LiveMetrics::default());
        m.set_nodes([(0, "g"), (1, "g")]);
        let snapshot = Some(Snapshot {
            at_ns: 1,
            published: 10,
            received: 3,
            duplicates: 1,
            connected_peers: 1,
            rss_bytes: 7_000_000,
            cpu_ns: 2_000_000_000,
            topics: [(
                "t".to_string(),
                testbed_contract::results::TopicPeers {
                    mesh: 1,
                    subscribed: 1,
                },
            )]
            .into(),
        });
        m.on_node(NodeUpdate {
            index: 0,
            group: "g",
            state: NodeState::Running,
            failed: false,
            metrics_addr: None,
            snapshot: snapshot.as_ref(),
        });
        m.set_gauge("churn_live_peers", "Live peers (churn).", &[], 2.0);
        let text = m.encode();
        assert!(
            text.contains("pubsub_testbed_nodes{state=\"running\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pubsub_testbed_messages_published_total 10"),
            "{text}"
        );
        assert!(
            text.contains("pubsub_testbed_node_rss_bytes{node=\"node-0000\",group=\"g\"} 7000000"),
            "{text}"
        );
        assert!(
            text.contains(
                "pubsub_testbed_node_cpu_seconds_total{node=\"node-0000\",group=\"g\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("pubsub_testbed_topic_subscribers{topic=\"t\"} 1"),
            "{text}"
        );
        assert!(text.contains("pubsub_testbed_churn_live_peers 2"), "{text}");
        assert!(text.contains("pubsub_testbed_run_finished 0"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
        let classic = to_prometheus_text(&text);
        assert!(
            classic.contains("# TYPE pubsub_testbed_messages_published_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP pubsub_testbed_messages_published_total Messages"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"));
    }
}
