//! Observability of a run (docs/observability.md): traces from every node into the embedded
//! OTLP collector (or an external one), live Prometheus metrics from the orchestrator, a
//! Grafana dashboard for them, and the report's links into the traces.
//!
//! [`RunTelemetry`] is what `run_plan` holds: started before the fleet is launched (so each
//! node's welcome can name the collector), finished after every node is reaped (so every
//! span has arrived), adding the `traces` and `metrics` sections to run.json. The report
//! renders them in [`crate::report::sections::traces`].

pub mod collector;
pub mod grafana;
pub mod http;
pub mod jaeger;
pub mod metrics;

use self::http::Server;
use crate::record::sections::{MetricsSection, NodeTrace, SlowestDelivery, TracesSection};
use crate::record::{NodeStatus, RunRecord};
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use collector::Collector;
use metrics::LiveMetrics;
use std::path::Path;
use std::sync::Arc;
use testbed_contract::plan::Telemetry;
use testbed_contract::protocol::{TracingConfig, hex, lifecycle_trace_id, node_service_name};

/// Where the orchestrator serves `/metrics` unless told otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:0";

/// A run's telemetry: the collector, the metrics endpoint, what nodes are told.
pub struct RunTelemetry {
    run_id: String,
    settings: Telemetry,
    collector: Option<Collector>,
    /// What every node's welcome says about tracing (its service name is added per node).
    tracing: Option<TracingConfig>,
    pub live: Arc<LiveMetrics>,
    server: Option<Server>,
    pub metrics_url: Option<String>,
}

impl RunTelemetry {
    /// Starts the collector (traces on, no external endpoint) and the metrics endpoint.
    /// `nodes_in_namespaces`: the nodes cannot reach the orchestrator's loopback.
    pub async fn start(
        settings: &Telemetry,
        nodes_in_namespaces: bool,
        run_id: &str,
        quiet: bool,
    ) -> Result<RunTelemetry> {
        let settings = settings.clone();
        let mut collector = None;
        let tracing = if settings.traces.is_on() {
            let endpoint = match &settings.otlp_endpoint {
                Some(e) => e.clone(),
                None if nodes_in_namespaces => {
                    // The orchestrator's loopback is not the nodes' (each has its own network
                    // namespace); a socket file is reachable from every namespace.
                    let c =
                        Collector::start("127.0.0.1:0", Some(otlp_socket_path().as_path())).await?;
                    let e = c.unix_endpoint().context("no unix socket")?;
                    collector = Some(c);
                    e
                }
                None => {
                    let c = Collector::start("127.0.0.1:0", None).await?;
                    let e = c.endpoint();
                    collector = Some(c);
                    e
                }
            };
            Some(TracingConfig {
                otlp_endpoint: endpoint,
                sample_ratio: settings.sample_ratio,
                service_name: String::new(),
            })
        } else {
            None
        };
        let live = Arc::new(LiveMetrics::default());
        let listen = settings
            .metrics_listen
            .clone()
            .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.into());
        let (server, metrics_url) =
            if listen == "off" {
                (None, None)
            } else {
                let router = Router::new()
                    .route("/metrics", get(serve_metrics))
                    .route("/sd", get(serve_sd))
                    .fallback(serve_index)
                    .with_state(live.clone());
                let s = Server::start(&listen, None, router).await.with_context(|| {
                format!(
                    "serving /metrics on {listen} (telemetry.metrics_listen / --metrics-listen)"
                )
            })?;
                let url = format!("http://{}/metrics", s.addr);
                (Some(s), Some(url))
            };
        if !quiet {
            if let Some(u) = &metrics_url {
                eprintln!("metrics: {u}");
            }
            if let Some(t) = &tracing {
                eprintln!(
                    "traces: {} (sample ratio {})",
                    if collector.is_some() {
                        format!("embedded collector at {}", t.otlp_endpoint)
                    } else {
                        format!("exporting to {}", t.otlp_endpoint)
                    },
                    t.sample_ratio
                );
            }
        }
        Ok(RunTelemetry {
            run_id: run_id.to_owned(),
            settings,
            collector,
            tracing,
            live,
            server,
            metrics_url,
        })
    }

    /// The `tracing` part of every node's welcome. The service name is left to the node
    /// (`node-0007` from its index).
    pub fn tracing(&self) -> Option<TracingConfig> {
        self.tracing.clone()
    }

    /// After every node is reaped: writes the trace files and `metrics.prom`, adds the
    /// `traces` and `metrics` sections to the record, lingers if asked, stops serving.
    /// Returns the files that could not be written (each one's error); the others are
    /// written regardless. The linger ends early on an interrupt.
    pub async fn finish(
        mut self,
        dir: &Path,
        record: &mut RunRecord,
        mut interrupt: tokio::sync::watch::Receiver<bool>,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        if let Some(t) = &self.tracing {
            let mut section = TracesSection {
                collector: if self.collector.is_some() {
                    "embedded"
                } else {
                    "external"
                }
                .into(),
                endpoint: t.otlp_endpoint.clone(),
                sample_ratio: t.sample_ratio,
                files: vec![],
                received: None,
                facts: None,
                slowest_delivery: None,
                failed_lifecycles: vec![],
            };
            if let Some(c) = self.collector.take() {
                let (spans, stats) = c.finish();
                match collector::write_files(dir, spans) {
                    Ok(facts) => {
                        section.files = vec![
                            collector::TRACES_JAEGER.into(),
                            collector::TRACES_OTLP.into(),
                        ];
                        section.facts = Some(facts);
                    }
                    Err(e) => errors.push(format!("{e:#}")),
                }
                section.received = Some(stats);
            }
            section.slowest_delivery = slowest_delivery(record, section.facts.as_ref());
            section.failed_lifecycles = record
                .nodes
                .iter()
                .filter(|n| !matches!(n.status, NodeStatus::Ok | NodeStatus::Removed))
                .map(|n| NodeTrace {
                    node: n.index,
                    service: node_service_name(n.index),
                    status: n.status,
                    trace_id: hex(&lifecycle_trace_id(&self.run_id, n.index)),
                })
                .collect();
            record.sections.traces = Some(section);
        }
        self.live.set_final(record);
        let exposition = metrics::to_prometheus_text(&self.live.encode());
        let prom = dir.join(metrics::METRICS_FILE);
        let file = match std::fs::write(&prom, &exposition) {
            Ok(()) => metrics::METRICS_FILE.into(),
            Err(e) => {
                errors.push(format!("writing {}: {e}", prom.display()));
                String::new()
            }
        };
        let section = MetricsSection {
            url: self.metrics_url.clone(),
            file,
            node_endpoints: self.live.node_endpoints(),
        };
        record.sections.metrics = Some(section);
        if self.server.is_some() && !self.settings.metrics_linger.is_zero() && !*interrupt.borrow()
        {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.metrics_linger) => {}
                _ = interrupt.wait_for(|i| *i) => {}
            }
        }
        drop(self.server.take());
        errors
    }
}

/// `GET /metrics`: OpenMetrics for scrapers that ask for it (Prometheus does), else the
/// classic text format.
async fn serve_metrics(State(live): State<Arc<LiveMetrics>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            live.encode(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics::to_prometheus_text(&live.encode()),
        )
            .into_response()
    }
}

/// `GET /sd`: Prometheus HTTP service discovery of the nodes' own metrics endpoints.
async fn serve_sd(State(live): State<Arc<LiveMetrics>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        live.node_targets_json(),
    )
        .into_response()
}

async fn serve_index() -> Html<&'static str> {
    Html(
        "<html><body><h1>pubsub-testbed</h1><p><a href=\"/metrics\">/metrics</a> (Prometheus) · <a href=\"/sd\">/sd</a> (http_sd targets of the nodes' own metrics)</p></body></html>",
    )
}

/// Where a netns run's collector listens: the temp dir under a short, unique name, as Unix
/// socket paths are limited to 108 bytes (the results folder may be deep).
fn otlp_socket_path() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("ptb-{}-otlp-{n}.sock", std::process::id()))
}

/// The slowest traced delivery: from the nodes' results when they name one (works with an
/// external collector), else from the collected spans.
fn slowest_delivery(record: &RunRecord, facts: Option<&jaeger::Facts>) -> Option<SlowestDelivery> {
    let from_results = record
        .nodes
        .iter()
        .filter_map(|n| {
            n.result
                .as_ref()?
                .slowest_traced_delivery
                .as_ref()
                .map(|d| (n.index, d))
        })
        .max_by_key(|(_, d)| d.latency_us)
        .map(|(i, d)| SlowestDelivery {
            trace_id: d.trace_id.clone(),
            latency_ms: d.latency_us as f64 / 1e3,
            origin: Some(d.origin),
            seq: Some(d.seq),
            receiver: node_service_name(i),
        });
    from_results.or_else(|| {
        facts?.slowest_delivery.as_ref().map(|d| SlowestDelivery {
            trace_id: d.trace_id.clone(),
            latency_ms: d.latency_us as f64 / 1e3,
            origin: None,
            seq: None,
            receiver: d.service.clone(),
        })
    })
}
