//! The embedded OTLP/HTTP trace collector: started on 127.0.0.1 for each run whose plan turns
//! traces on (and names no external collector), and also on a Unix socket when the nodes run
//! in their own network namespaces. It accepts `POST /v1/traces` with protobuf
//! (`application/x-protobuf`) or OTLP/JSON (`application/json`) bodies, keeps the spans in
//! memory, and at the end of the run writes `traces.otlp.json` (OTLP/JSON, one `TracesData`
//! document) and `traces.json` (the JSON Jaeger's UI loads, see [`super::jaeger`]).

use super::http::{MAX_BODY, Server};
use super::jaeger;
use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use prost::Message;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Spans kept at most; beyond this, requests are still answered but their spans counted as
/// dropped (a fleet traced at 100 % can produce millions).
pub const MAX_SPANS: u64 = 2_000_000;

pub const TRACES_JAEGER: &str = "traces.json";
pub const TRACES_OTLP: &str = "traces.otlp.json";

#[derive(Debug, Default)]
struct Store {
    resource_spans: Vec<ResourceSpans>,
    spans: u64,
    dropped: u64,
    requests: u64,
    rejected: u64,
}

type Shared = Arc<Mutex<Store>>;

pub struct Collector {
    server: Server,
    store: Shared,
}

pub use crate::record::sections::CollectorStats;

impl Collector {
    /// Listens on `bind` (TCP) and, if given, on the Unix socket `unix_path`.
    pub async fn start(bind: &str, unix_path: Option<&Path>) -> Result<Collector> {
        let store = Shared::default();
        let router = Router::new()
            .route("/v1/traces", post(export).fallback(not_post))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(store.clone());
        let server =
            Server::start(bind, unix_path, router)
                .await
                .with_context(|| match unix_path {
                    Some(p) => format!(
                        "starting the embedded OTLP collector on {bind} and {}",
                        p.display()
                    ),
                    None => format!("starting the embedded OTLP collector on {bind}"),
                })?;
        Ok(Collector { server, store })
    }

    /// The OTLP/HTTP base URL nodes export to.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// `unix:/path` of the collector's Unix socket, when it has one.
    pub fn unix_endpoint(&self) -> Option<String> {
        self.server.unix_endpoint()
    }

    /// Stops receiving and returns what arrived.
    pub fn finish(self) -> (Vec<ResourceSpans>, CollectorStats) {
        drop(self.server);
        let mut st = self.store.lock().expect("collector store");
        let stats = CollectorStats {
            requests: st.requests,
            rejected_requests: st.rejected,
            spans: st.spans,
            dropped_spans: st.dropped,
        };
        (std::mem::take(&mut st.resource_spans), stats)
    }
}

async fn not_found(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!(
            "this is the pubsub-testbed OTLP collector: POST traces to /v1/traces, not {}\n",
            uri.path()
        ),
    )
        .into_response()
}

async fn not_post() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST")],
        "POST OTLP traces to /v1/traces\n",
    )
        .into_response()
}

async fn export(State(store): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let value = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    // Our nodes do not compress; an exporter that does is told so rather than misread.
    if let Some(enc) =
        value(header::CONTENT_ENCODING).filter(|e| !e.eq_ignore_ascii_case("identity"))
    {
        store.lock().expect("collector store").rejected += 1;
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {enc} is not supported: send uncompressed OTLP\n"),
        )
            .into_response();
    }
    let json = value(header::CONTENT_TYPE).is_some_and(|c| c.to_ascii_lowercase().contains("json"));
    let decoded = if json {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string())
    } else {
        ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())
    };
    let mut st = store.lock().expect("collector store");
    st.requests += 1;
    let export = match decoded {
        Ok(r) => r,
        Err(e) => {
            st.rejected += 1;
            return (
                StatusCode::BAD_REQUEST,
                format!("not an OTLP ExportTraceServiceRequest: {e}\n"),
            )
                .into_response();
        }
    };
    for rs in export.resource_spans {
        let n: u64 = rs.scope_spans.iter().map(|s| s.spans.len() as u64).sum();
        if st.spans + n > MAX_SPANS {
            st.dropped += n;
            continue;
        }
        st.spans += n;
        st.resource_spans.push(rs);
    }
    // An empty ExportTraceServiceResponse: full success.
    if json {
        ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Bytes::new(),
        )
            .into_response()
    }
}

/// Writes `traces.otlp.json` and `traces.json` into `dir`; returns the Jaeger view's facts.
pub fn write_files(dir: &Path, resource_spans: Vec<ResourceSpans>) -> Result<jaeger::Facts> {
    let data = TracesData { resource_spans };
    let otlp = std::fs::File::create(dir.join(TRACES_OTLP))
        .with_context(|| format!("creating {}", dir.join(TRACES_OTLP).display()))?;
    serde_json::to_writer(std::io::BufWriter::new(otlp), &data)
        .context("writing OTLP/JSON traces")?;
    let (file, facts) = jaeger::convert(&data.resource_spans);
    let out = std::fs::File::create(dir.join(TRACES_JAEGER))
        .with_context(|| format!("creating {}", dir.join(TRACES_JAEGER).display()))?;
    serde_json::to_writer(std::io::BufWriter::new(out), &file)
        .context("writing Jaeger JSON traces")?;
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::http::request;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn export(n: usize) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..n)
                        .map(|i| Span {
                            trace_id: vec![1; 16],
                            span_id: vec![i as u8 + 1; 8],
                            name: "publish".into(),
                            start_time_unix_nano: 1_000,
                            end_time_unix_nano: 3_000,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[tokio::test]
    async fn accepts_protobuf_and_json_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let c = Collector::start("127.0.0.1:0", Some(dir.path().join("otlp.sock").as_path()))
            .await
            .unwrap();
        let addr = c.endpoint().trim_start_matches("http://").to_owned();
        let pb = export(2).encode_to_vec();
        let (st, _) = request(&addr, "POST", "/v1/traces", "application/x-protobuf", &pb)
            .await
            .unwrap();
        assert_eq!(st, 200);
        let js = serde_json::to_vec(&export(3)).unwrap();
        // OTLP/JSON ids are hex strings.
        assert!(String::from_utf8_lossy(&js).contains("\"traceId\":\"01010101"));
        let (st, body) = request(&addr, "POST", "/v1/traces", "application/json", &js)
            .await
            .unwrap();
        assert_eq!((st, body.as_slice()), (200, b"{}".as_slice()));
        let (st, _) = request(
            &addr,
            "POST",
            "/v1/traces",
            "application/x-protobuf",
            b"\xff\xff",
        )
        .await
        .unwrap();
        assert_eq!(st, 400);
        let (st, _) = request(&addr, "POST", "/v1/metrics", "application/x-protobuf", &pb)
            .await
            .unwrap();
        assert_eq!(st, 404);
        let (st, _) = request(&addr, "GET", "/v1/traces", "text/plain", b"")
            .await
            .unwrap();
        assert_eq!(st, 405);
        // The same collector through its Unix socket (nodes in network namespaces).
        let unix = c.unix_endpoint().expect("a unix socket");
        let (st, _) = request(&unix, "POST", "/v1/traces", "application/x-protobuf", &pb)
            .await
            .unwrap();
        assert_eq!(st, 200);
        // Compressed bodies are refused, not misread.
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        sock.write_all(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\nConnection: close\r\n\r\n\x1f\x8b",
        )
        .await
        .unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 415"), "{out}");
        let (rs, stats) = c.finish();
        assert_eq!(stats.spans, 7);
        assert_eq!(stats.requests, 4);
        assert_eq!(stats.rejected_requests, 2);
        assert_eq!(rs.len(), 3);
    }
}
