//! OTLP spans → the JSON Jaeger's UI loads ("Search" → "JSON File"), which is the body of its
//! `/api/traces` answer:
//!
//! ```text
//! {"data":[{"traceID","spans":[{"traceID","spanID","operationName",
//!   "references":[{"refType":"CHILD_OF","traceID","spanID"}],"startTime"(µs),"duration"(µs),
//!   "tags":[{"key","type","value"}],"logs":[{"timestamp","fields"}],"processID"}],
//!   "processes":{"p1":{"serviceName","tags"}}}], "total":0,"limit":0,"offset":0,"errors":null}
//! ```
//!
//! One trace per trace id; processes are numbered per trace in order of appearance (one per
//! distinct OTLP resource, i.e. per node).

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, span, status};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use testbed_contract::protocol::hex;

#[derive(Debug, Serialize, Deserialize)]
pub struct JaegerFile {
    pub data: Vec<JaegerTrace>,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub errors: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct JaegerTrace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<JaegerSpan>,
    pub processes: BTreeMap<String, JaegerProcess>,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JaegerSpan {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub flags: u32,
    pub operation_name: String,
    pub references: Vec<JaegerRef>,
    /// µs since the Unix epoch.
    pub start_time: u64,
    /// µs.
    pub duration: u64,
    pub tags: Vec<JaegerTag>,
    pub logs: Vec<JaegerLog>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JaegerRef {
    pub ref_type: String,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JaegerTag {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct JaegerLog {
    pub timestamp: u64,
    pub fields: Vec<JaegerTag>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JaegerProcess {
    pub service_name: String,
    pub tags: Vec<JaegerTag>,
}

/// Facts about the traces, for run.json and the report.
pub use crate::record::sections::{SlowDelivery, TraceFacts as Facts};

/// One trace being assembled: its spans (with their process index) and its processes in
/// order of appearance.
type TraceParts = (Vec<(usize, JaegerSpan)>, Vec<usize>);

/// Converts spans to the Jaeger file and collects facts.
pub fn convert(resource_spans: &[ResourceSpans]) -> (JaegerFile, Facts) {
    struct Proc {
        process: JaegerProcess,
    }
    let mut procs: Vec<Proc> = Vec::new();
    let mut proc_of_key: HashMap<String, usize> = HashMap::new();
    // trace id → (spans, process indices in order)
    let mut traces: BTreeMap<String, TraceParts> = BTreeMap::new();
    let mut facts = Facts::default();

    for rs in resource_spans {
        let attrs = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let service = attrs
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(value_string)
            .unwrap_or_else(|| "unknown_service".into());
        let tags: Vec<JaegerTag> = attrs
            .iter()
            .filter(|kv| kv.key != "service.name")
            .map(tag)
            .collect();
        let key = serde_json::to_string(&(&service, &tags)).unwrap_or_default();
        let pi = *proc_of_key.entry(key).or_insert_with(|| {
            procs.push(Proc {
                process: JaegerProcess {
                    service_name: service.clone(),
                    tags,
                },
            });
            procs.len() - 1
        });
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref();
            for s in &ss.spans {
                let js = jaeger_span(s, scope);
                facts.spans += 1;
                *facts
                    .by_operation
                    .entry(js.operation_name.clone())
                    .or_default() += 1;
                if js.operation_name == "deliver"
                    && facts
                        .slowest_delivery
                        .as_ref()
                        .is_none_or(|d| js.duration > d.latency_us)
                {
                    facts.slowest_delivery = Some(SlowDelivery {
                        trace_id: js.trace_id.clone(),
                        service: service.clone(),
                        latency_us: js.duration,
                    });
                }
                let entry = traces.entry(js.trace_id.clone()).or_default();
                if !entry.1.contains(&pi) {
                    entry.1.push(pi);
                }
                entry.0.push((pi, js));
            }
        }
    }

    let mut data: Vec<JaegerTrace> = traces
        .into_iter()
        .map(|(trace_id, (spans, order))| {
            let pid =
                |pi: usize| format!("p{}", order.iter().position(|&p| p == pi).unwrap_or(0) + 1);
            let processes = order
                .iter()
                .map(|&pi| (pid(pi), procs[pi].process.clone()))
                .collect();
            let mut spans: Vec<JaegerSpan> = spans
                .into_iter()
                .map(|(pi, mut s)| {
                    s.process_id = pid(pi);
                    s
                })
                .collect();
            spans.sort_by_key(|s| (s.start_time, s.references.len()));
            JaegerTrace {
                trace_id,
                spans,
                processes,
                warnings: None,
            }
        })
        .collect();
    data.sort_by_key(|t| t.spans.first().map_or(0, |s| s.start_time));
    facts.traces = data.len() as u64;
    let file = JaegerFile {
        total: data.len(),
        data,
        limit: 0,
        offset: 0,
        errors: None,
    };
    (file, facts)
}

fn jaeger_span(
    s: &Span,
    scope: Option<&opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
) -> JaegerSpan {
    let trace_id = hex(&s.trace_id);
    let mut tags: Vec<JaegerTag> = s.attributes.iter().map(tag).collect();
    let kind = match span::SpanKind::try_from(s.kind).unwrap_or(span::SpanKind::Unspecified) {
        span::SpanKind::Server => Some("server"),
        span::SpanKind::Client => Some("client"),
        span::SpanKind::Producer => Some("producer"),
        span::SpanKind::Consumer => Some("consumer"),
        span::SpanKind::Internal => Some("internal"),
        span::SpanKind::Unspecified => None,
    };
    if let Some(k) = kind {
        tags.push(str_tag("span.kind", k));
    }
    if let Some(sc) = scope.filter(|sc| !sc.name.is_empty()) {
        tags.push(str_tag("otel.scope.name", &sc.name));
    }
    if let Some(st) = &s.status
        && st.code == status::StatusCode::Error as i32
    {
        tags.push(JaegerTag {
            key: "error".into(),
            kind: "bool".into(),
            value: true.into(),
        });
        tags.push(str_tag("otel.status_code", "ERROR"));
        if !st.message.is_empty() {
            tags.push(str_tag("otel.status_description", &st.message));
        }
    }
    let references = if s.parent_span_id.iter().any(|&b| b != 0) {
        vec![JaegerRef {
            ref_type: "CHILD_OF".into(),
            trace_id: trace_id.clone(),
            span_id: hex(&s.parent_span_id),
        }]
    } else {
        Vec::new()
    };
    let logs = s
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![str_tag("event", &e.name)];
            fields.extend(e.attributes.iter().map(tag));
            JaegerLog {
                timestamp: e.time_unix_nano / 1_000,
                fields,
            }
        })
        .collect();
    JaegerSpan {
        trace_id,
        span_id: hex(&s.span_id),
        flags: s.flags & 0xff,
        operation_name: s.name.clone(),
        references,
        start_time: s.start_time_unix_nano / 1_000,
        duration: s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1_000,
        tags,
        logs,
        process_id: String::new(),
        warnings: None,
    }
}

fn str_tag(key: &str, v: &str) -> JaegerTag {
    JaegerTag {
        key: key.into(),
        kind: "string".into(),
        value: v.into(),
    }
}

fn tag(kv: &KeyValue) -> JaegerTag {
    use any_value::Value;
    let (kind, value): (&str, serde_json::Value) =
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => ("string", s.clone().into()),
            Some(Value::BoolValue(b)) => ("bool", (*b).into()),
            Some(Value::IntValue(i)) => ("int64", (*i).into()),
            Some(Value::DoubleValue(d)) => ("float64", (*d).into()),
            Some(_) => (
                "string",
                value_string(kv.value.as_ref().expect("some")).into(),
            ),
            None => ("string", "".into()),
        };
    JaegerTag {
        key: kv.key.clone(),
        kind: kind.into(),
        value,
    }
}

fn value_string(v: &AnyValue) -> String {
    use any_value::Value;
    match &v.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => hex(b),
        Some(Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(value_string).collect();
            format!("[{}]", items.join(","))
        }
        Some(Value::KvlistValue(l)) => {
            let items: Vec<String> = l
                .values
                .iter()
                .map(|kv| {
                    format!(
                        "{}={}",
                        kv.key,
                        kv.value.as_ref().map(value_string).unwrap_or_default()
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::ScopeSpans;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn rs(service: &str, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service), kv("testbed.node.group", "g")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn one_message_is_one_trace_with_processes_per_node() {
        let publish = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![1; 8],
            name: "publish".into(),
            kind: span::SpanKind::Producer as i32,
            start_time_unix_nano: 5_000_000,
            end_time_unix_nano: 5_010_000,
            ..Default::default()
        };
        let deliver = |sid: u8, end: u64| Span {
            trace_id: vec![0xab; 16],
            span_id: vec![sid; 8],
            parent_span_id: vec![1; 8],
            name: "deliver".into(),
            kind: span::SpanKind::Consumer as i32,
            start_time_unix_nano: 5_000_000,
            end_time_unix_nano: end,
            ..Default::default()
        };
        let input = vec![
            rs("node-0000", vec![publish]),
            rs("node-0001", vec![deliver(2, 6_000_000)]),
            rs("node-0002", vec![deliver(3, 9_000_000)]),
        ];
        let (file, facts) = convert(&input);
        assert_eq!(file.data.len(), 1);
        let t = &file.data[0];
        assert_eq!(t.trace_id, "ab".repeat(16));
        assert_eq!(t.spans.len(), 3);
        assert_eq!(t.processes.len(), 3);
        let p = &t.spans[0];
        assert_eq!(p.operation_name, "publish");
        assert!(p.references.is_empty());
        assert_eq!(t.processes[&p.process_id].service_name, "node-0000");
        for d in &t.spans[1..] {
            assert_eq!(d.references[0].ref_type, "CHILD_OF");
            assert_eq!(d.references[0].span_id, p.span_id);
            assert_eq!(d.start_time, 5_000);
        }
        let slow = facts.slowest_delivery.unwrap();
        assert_eq!(
            (slow.service.as_str(), slow.latency_us),
            ("node-0002", 4_000)
        );
        assert_eq!(facts.by_operation["deliver"], 2);
        let v = serde_json::to_value(&file).unwrap();
        assert!(v["data"][0]["spans"][0]["traceID"].is_string());
        assert!(v["data"][0]["spans"][1]["references"][0]["spanID"].is_string());
        assert!(v["data"][0]["processes"]["p1"]["serviceName"].is_string());
    }
}
