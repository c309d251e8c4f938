//! Traces of this node (OpenTelemetry, exported over OTLP/HTTP with protobuf bodies), and the
//! optional libp2p metrics endpoint. docs/observability.md shows what they look like.
//!
//! Three kinds of spans, built directly with the OpenTelemetry API (not through a
//! `tracing` layer, so logging stays as cheap as it was and nothing is traced by accident):
//! - the node's **lifecycle**: a root span `lifecycle` from `starting` to `done`/`failed`,
//!   with one child span per state (`state listening`, …). Connection and subscription events
//!   are span events on the state span current at the time. Its trace id is derived from the
//!   run id and the node index ([`lifecycle_trace_id`]), so the orchestrator can name it
//!   without asking the node. Always kept.
//! - **publish**: one root span per sampled published message; its W3C context travels in
//!   the payload header (trace id, span id, flags), so each message is one trace.
//! - **deliver**: on every receiver, one span per first delivery of a message whose header
//!   carries a sampled context, child of the publish span. It starts at the publish time and
//!   ends at the receive time: its length is the delivery latency.
//!
//! Sampling is decided by the publisher ([`sampled`]); receivers follow the header's sampled
//! flag. With tracing off the node holds `None` and every hook is a branch: no exporter, no
//! spans, no threads.

use libp2p::metrics::Registry;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, SpanId, TraceFlags, TraceId};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, Sampler, SdkTracer, SdkTracerProvider,
    Span,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testbed_contract::payload::{Header, TraceContext};
use testbed_contract::protocol::{NodeConfig, hex, lifecycle_trace_id, sampled};
use testbed_contract::results::{NodeState, StateChange, TracedDelivery};

/// How often finished spans are sent (the batch exporter's schedule).
const EXPORT_EVERY: Duration = Duration::from_millis(500);
/// One export request may take this long (an unreachable collector must not hold up exit).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spans waiting for export at most; beyond this new spans are dropped (and counted by the
/// SDK), so a slow collector costs spans, not memory.
const MAX_QUEUE: usize = 8192;
/// How long the flush at exit may take.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Bit 0 of the W3C trace flags.
const SAMPLED: u8 = 1;

/// The node's tracer and the spans it keeps open.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    sample_ratio: f64,
    index: u32,
    /// The lifecycle root span, open until `done`/`failed`.
    lifecycle: Option<Span>,
    lifecycle_cx: Context,
    /// The current state's span.
    state: Option<Span>,
    slowest: Option<TracedDelivery>,
    pub traced_publishes: u64,
    pub traced_deliveries: u64,
}

impl Telemetry {
    /// Starts tracing if the welcome asks for it; `None` (and nothing started) otherwise, or
    /// when the exporter cannot be built (logged: a run without traces beats a failed run).
    pub fn start(cfg: &NodeConfig, peer_id: &str, timeline: &[StateChange]) -> Option<Telemetry> {
        let tc = cfg.tracing.as_ref()?;
        match Self::build(cfg, tc, peer_id, timeline) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %tc.otlp_endpoint, "tracing is off: cannot build the OTLP exporter");
                None
            }
        }
    }

    fn build(
        cfg: &NodeConfig,
        tc: &testbed_contract::protocol::TracingConfig,
        peer_id: &str,
        timeline: &[StateChange],
    ) -> Result<Telemetry, String> {
        let base = match unix_socket(&tc.otlp_endpoint) {
            Some(path) => {
                let addr = forward_to_unix(path)
                    .map_err(|e| format!("cannot forward OTLP to {path}: {e}"))?;
                format!("http://{addr}")
            }
            None => tc.otlp_endpoint.clone(),
        };
        let endpoint = traces_url(&base);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(EXPORT_EVERY)
                    .with_max_queue_size(MAX_QUEUE)
                    .build(),
            )
            .build();
        let resource = Resource::builder_empty()
            .with_service_name(tc.service_name_of(cfg.index))
            .with_attributes([
                KeyValue::new("testbed.run_id", cfg.run_id.clone()),
                KeyValue::new("testbed.node.index", i64::from(cfg.index)),
                KeyValue::new("testbed.node.group", cfg.group.clone()),
                KeyValue::new("testbed.node.implementation", "rust"),
                KeyValue::new("testbed.peer_id", peer_id.to_owned()),
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            ])
            .build();
        let ids = Arc::new(NodeIds::new(cfg.seed ^ u64::from(cfg.index)));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_sampler(Sampler::AlwaysOn)
            .with_id_generator(SharedIds(ids.clone()))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("pubsub-node");

        let start = timeline
            .first()
            .map_or_else(crate::clock::now_ns, |c| c.at_ns);
        ids.force_next_trace(TraceId::from_bytes(lifecycle_trace_id(
            &cfg.run_id,
            cfg.index,
        )));
        let root = tracer
            .span_builder("lifecycle")
            .with_kind(SpanKind::Internal)
            .with_start_time(system_time(start))
            .with_attributes([
                KeyValue::new("testbed.node.index", i64::from(cfg.index)),
                KeyValue::new("testbed.node.group", cfg.group.clone()),
            ])
            .start_with_context(&tracer, &Context::new());
        let lifecycle_cx = Context::new().with_remote_span_context(root.span_context().clone());
        let mut t = Telemetry {
            provider,
            tracer,
            sample_ratio: tc.sample_ratio,
            index: cfg.index,
            lifecycle: Some(root),
            lifecycle_cx,
            state: None,
            slowest: None,
            traced_publishes: 0,
            traced_deliveries: 0,
        };
        for c in timeline {
            t.on_state(c.state, c.at_ns, c.detail.as_deref());
        }
        Ok(t)
    }

    /// A lifecycle transition at `at_ns`: ends the current state's span and opens the next;
    /// `done` and `failed` end the lifecycle.
    pub fn on_state(&mut self, state: NodeState, at_ns: u64, detail: Option<&str>) {
        let at = system_time(at_ns);
        if let Some(mut s) = self.state.take() {
            s.end_with_timestamp(at);
        }
        if matches!(state, NodeState::Done | NodeState::Failed) {
            if let Some(mut root) = self.lifecycle.take() {
                let mut attrs = vec![KeyValue::new("state", state.as_str())];
                if let Some(d) = detail {
                    attrs.push(KeyValue::new("detail", d.to_owned()));
                }
                root.add_event_with_timestamp(state.as_str(), at, attrs);
                if state == NodeState::Failed {
                    root.set_status(Status::error(detail.unwrap_or("failed").to_owned()));
                }
                root.end_with_timestamp(at);
            }
            return;
        }
        let mut attrs = vec![KeyValue::new("state", state.as_str())];
        if let Some(d) = detail {
            attrs.push(KeyValue::new("detail", d.to_owned()));
        }
        let span = self
            .tracer
            .span_builder(format!("state {}", state.as_str()))
            .with_start_time(at)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &self.lifecycle_cx);
        self.state = Some(span);
    }

    /// A span event (connection, subscription …) on the current state's span.
    pub fn event(&mut self, name: &'static str, attrs: Vec<KeyValue>) {
        let now = SystemTime::now();
        if let Some(s) = self.state.as_mut().or(self.lifecycle.as_mut()) {
            s.add_event_with_timestamp(name, now, attrs);
        }
    }

    /// Starts the publish span of message `seq` if it is sampled; the context to put into
    /// the payload header comes with it. End it with [`Telemetry::end_publish`].
    pub fn start_publish(
        &mut self,
        seq: u64,
        topic: &str,
        size: usize,
        at_ns: u64,
    ) -> Option<(Span, TraceContext)> {
        if !sampled(self.index, seq, self.sample_ratio) {
            return None;
        }
        let span = self
            .tracer
            .span_builder("publish")
            .with_kind(SpanKind::Producer)
            .with_start_time(system_time(at_ns))
            .with_attributes([
                KeyValue::new("messaging.system", "libp2p-pubsub"),
                KeyValue::new("messaging.operation", "publish"),
                KeyValue::new("messaging.destination.name", topic.to_owned()),
                KeyValue::new("messaging.message.body.size", size as i64),
                KeyValue::new("testbed.message.origin", i64::from(self.index)),
                KeyValue::new("testbed.message.seq", seq as i64),
            ])
            .start_with_context(&self.tracer, &Context::new());
        let sc = span.span_context();
        let ctx = TraceContext {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8(),
        };
        Some((span, ctx))
    }

    /// Ends a publish span; `error`: the router refused the message.
    pub fn end_publish(&mut self, mut span: Span, error: Option<String>) {
        match error {
            None => self.traced_publishes += 1,
            Some(e) => span.set_status(Status::error(e)),
        }
        span.end();
    }

    /// The first delivery of a message, received at `received_ns`: a `deliver` span if its
    /// header carries a sampled trace context. `from` is the peer that forwarded it.
    pub fn on_delivery(&mut self, data: &[u8], received_ns: u64, from: Option<String>) {
        let Ok(h) = Header::decode(data) else { return };
        let Some(tc) = h.trace.filter(|t| t.flags & SAMPLED != 0) else {
            return;
        };
        let parent = SpanContext::new(
            TraceId::from_bytes(tc.trace_id),
            SpanId::from_bytes(tc.span_id),
            TraceFlags::new(tc.flags),
            true,
            TraceState::default(),
        );
        if !parent.is_valid() {
            return;
        }
        let latency_us = received_ns.saturating_sub(h.due_ns) / 1_000;
        let mut attrs = vec![
            KeyValue::new("messaging.system", "libp2p-pubsub"),
            KeyValue::new("messaging.operation", "receive"),
            KeyValue::new("testbed.message.origin", i64::from(h.origin)),
            KeyValue::new("testbed.message.seq", h.seq as i64),
            KeyValue::new("testbed.receiver.index", i64::from(self.index)),
            KeyValue::new("testbed.latency_us", latency_us as i64),
        ];
        if let Some(from) = from {
            attrs.push(KeyValue::new("testbed.forwarded_by", from));
        }
        let cx = Context::new().with_remote_span_context(parent);
        let mut span = self
            .tracer
            .span_builder("deliver")
            .with_kind(SpanKind::Consumer)
            .with_start_time(system_time(h.due_ns.min(received_ns)))
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &cx);
        span.end_with_timestamp(system_time(received_ns));
        self.traced_deliveries += 1;
        if self
            .slowest
            .as_ref()
            .is_none_or(|s| latency_us > s.latency_us)
        {
            self.slowest = Some(TracedDelivery {
                trace_id: hex(&tc.trace_id),
                origin: h.origin,
                seq: h.seq,
                latency_us,
            });
        }
    }

    /// The slowest traced delivery so far, for the final result.
    pub fn slowest_delivery(&self) -> Option<TracedDelivery> {
        self.slowest.clone()
    }

    /// Ends what is still open and flushes every span to the collector (off the event loop's
    /// thread; bounded by [`SHUTDOWN_TIMEOUT`]).
    pub async fn shutdown(mut self) {
        let now = SystemTime::now();
        if let Some(mut s) = self.state.take() {
            s.end_with_timestamp(now);
        }
        if let Some(mut root) = self.lifecycle.take() {
            root.end_with_timestamp(now);
        }
        let (published, delivered) = (self.traced_publishes, self.traced_deliveries);
        let provider = self.provider.clone();
        drop(self);
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT))
                .await;
        match done {
            Ok(Ok(())) => tracing::debug!(published, delivered, "traces flushed"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "traces may be incomplete: the OTLP export failed")
            }
            Err(e) => tracing::warn!(error = %e, "traces may be incomplete"),
        }
    }
}

/// The peer that forwarded a gossipsub message to us (the hop), for the delivery span.
pub fn forwarded_by(ev: &crate::swarm::BehaviourEvent) -> Option<String> {
    match ev {
        crate::swarm::BehaviourEvent::Gossipsub(libp2p::gossipsub::Event::Message {
            propagation_source,
            ..
        }) => Some(propagation_source.to_string()),
        _ => None,
    }
}

/// `http://host:4318` → `http://host:4318/v1/traces` (an URL already ending in `/v1/traces`
/// is used as it is).
pub fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The socket path of a `unix:/path` (or `unix:///path`) endpoint.
fn unix_socket(endpoint: &str) -> Option<&str> {
    let path = endpoint.strip_prefix("unix:")?;
    Some(path.strip_prefix("//").unwrap_or(path)).filter(|p| !p.is_empty())
}

/// Listens on 127.0.0.1 (this node's own loopback, inside its network namespace) and forwards
/// every connection to the Unix socket `path`: the OTLP exporter speaks HTTP over TCP only,
/// while a socket file is reachable from any namespace. Runs on its own thread so that the
/// exporter's flush never waits on the node's event loop. Returns `127.0.0.1:PORT`.
fn forward_to_unix(path: &str) -> std::io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let path = std::path::PathBuf::from(path);
    std::thread::Builder::new()
        .name("otlp-forward".into())
        .spawn(move || {
            // Built here, not by the caller: a runtime must not be dropped in async code.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let rt = match rt {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "no OTLP forwarding");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "no OTLP forwarding");
                        return;
                    }
                };
                loop {
                    let Ok((mut tcp, _)) = listener.accept().await else {
                        // E.g. out of file descriptors: don't spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let path = path.clone();
                    tokio::spawn(async move {
                        match tokio::net::UnixStream::connect(&path).await {
                            Ok(mut unix) => {
                                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                            }
                            Err(e) => tracing::warn!(
                                error = %e,
                                socket = %path.display(),
                                "cannot reach the trace collector"
                            ),
                        }
                    });
                }
            })
        })?;
    Ok(addr)
}

fn system_time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// Trace and span ids: random (splitmix64, seeded per process), except the one trace id the
/// lifecycle root must have.
#[derive(Debug)]
struct NodeIds {
    state: Mutex<(u64, Option<TraceId>)>,
}

impl NodeIds {
    fn new(seed: u64) -> Self {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let s = seed ^ t.rotate_left(17) ^ u64::from(std::process::id()).rotate_left(41);
        NodeIds {
            state: Mutex::new((s, None)),
        }
    }

    fn force_next_trace(&self, id: TraceId) {
        self.state.lock().expect("id lock").1 = Some(id);
    }

    fn next(&self) -> u64 {
        let mut g = self.state.lock().expect("id lock");
        g.0 = g.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = g.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Debug)]
struct SharedIds(Arc<NodeIds>);

impl IdGenerator for SharedIds {
    fn new_trace_id(&self) -> TraceId {
        if let Some(id) = self.0.state.lock().expect("id lock").1.take() {
            return id;
        }
        let hi = u128::from(self.0.next());
        let lo = u128::from(self.0.next() | 1);
        TraceId::from((hi << 64) | lo)
    }

    fn new_span_id(&self) -> SpanId {
        SpanId::from(self.0.next() | 1)
    }
}

/// Serves `registry` as Prometheus text on `ip`, an OS-assigned port, until the process
/// ends: any `GET` gets the metrics. Returns `HOST:PORT`.
pub async fn serve_metrics(
    ip: std::net::IpAddr,
    registry: Arc<Registry>,
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                // Read the request head; a body (none expected) is ignored.
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let mut body = String::new();
                let (status, ctype) =
                    match prometheus_client::encoding::text::encode(&mut body, &registry) {
                        Ok(()) => (
                            "200 OK",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                        Err(_) => ("500 Internal Server Error", "text/plain"),
                    };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_appends_the_signal_path_once() {
        assert_eq!(traces_url("http://h:4318"), "http://h:4318/v1/traces");
        assert_eq!(traces_url("http://h:4318/"), "http://h:4318/v1/traces");
        assert_eq!(
            traces_url("http://h:4318/v1/traces"),
            "http://h:4318/v1/traces"
        );
    }

    #[test]
    fn unix_endpoints_name_a_socket_path() {
        assert_eq!(unix_socket("unix:/tmp/o.sock"), Some("/tmp/o.sock"));
        assert_eq!(unix_socket("unix:///tmp/o.sock"), Some("/tmp/o.sock"));
        assert_eq!(unix_socket("unix:"), None);
        assert_eq!(unix_socket("http://h:4318"), None);
    }

    /// Bytes written to the forwarder's TCP port reach the Unix socket and back.
    #[tokio::test]
    async fn the_forwarder_joins_tcp_to_the_unix_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = std::env::temp_dir().join(format!("otlp-fwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("o.sock");
        let _ = std::fs::remove_file(&path);
        let unix = tokio::net::UnixListener::bind(&path).unwrap();
        let addr = forward_to_unix(path.to_str().unwrap()).unwrap();
        assert!(addr.ip().is_loopback());
        let echo = tokio::spawn(async move {
            let (mut s, _) = unix.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        tcp.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        echo.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ids_are_forced_once_then_random() {
        let ids = SharedIds(Arc::new(NodeIds::new(1)));
        let forced = TraceId::from_bytes([7; 16]);
        ids.0.force_next_trace(forced);
        assert_eq!(ids.new_trace_id(), forced);
        let a = ids.new_trace_id();
        let b = ids.new_trace_id();
        assert_ne!(a, forced);
        assert_ne!(a, b);
        assert_ne!(ids.new_span_id(), SpanId::INVALID);
    }
}
