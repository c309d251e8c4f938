//! Traces and metrics of real runs: the embedded collector's Jaeger file holds one trace per
//! message with a delivery span per receiver, and a real Prometheus scrapes `/metrics` with
//! figures that agree with run.json.

mod support;

use orchestrator::telemetry::http::request;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use support::*;
use testbed_contract::protocol::{hex, lifecycle_trace_id};

/// Five nodes, all subscribed, fully connected: each message reaches exactly four receivers.
fn plan(extra_telemetry: &str) -> String {
    format!(
        r#"
version: 1
name: observability
timeout: 2m
groups:
  - id: peers
    count: 5
topology:
  kind: full
workload:
  - subscribe:
      topics: [t]
  - publish:
      topic: t
      count: 3
      size: 128
  - settle:
      timeout: 10s
telemetry:
  snapshot_interval: 200ms
{extra_telemetry}
"#
    )
}

fn json_file(p: &Path) -> Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_is_one_trace_with_a_delivery_span_per_receiver() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(
        &plan("  traces: on\n  sample_ratio: 1.0\n  metrics_listen: \"off\""),
        &[],
        tmp.path(),
    )
    .await;
    let r = &out.record;
    assert_eq!(
        r.outcome.status,
        orchestrator::record::Status::Passed,
        "{:?}",
        r.outcome.reasons
    );
    assert_eq!(r.summary.delivered, 5 * 3 * 4);

    let file = json_file(&out.dir.join("traces.json"));
    // The shape Jaeger's UI loads.
    let data = file["data"].as_array().expect("data: [traces]");
    for t in data {
        let tid = t["traceID"].as_str().expect("traceID");
        assert_eq!(tid.len(), 32);
        let processes = t["processes"].as_object().expect("processes");
        for p in processes.values() {
            assert!(p["serviceName"].as_str().unwrap().starts_with("node-"));
            assert!(p["tags"].is_array());
        }
        for s in t["spans"].as_array().expect("spans") {
            assert_eq!(s["traceID"], t["traceID"]);
            assert_eq!(s["spanID"].as_str().unwrap().len(), 16);
            assert!(s["operationName"].is_string());
            assert!(s["references"].is_array());
            assert!(s["startTime"].is_u64() && s["duration"].is_u64());
            assert!(s["tags"].is_array() && s["logs"].is_array());
            assert!(processes.contains_key(s["processID"].as_str().unwrap()));
        }
    }

    let service = |t: &Value, s: &Value| -> String {
        t["processes"][s["processID"].as_str().unwrap()]["serviceName"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut message_traces = 0;
    let mut deliver_spans = 0;
    for t in data {
        let spans = t["spans"].as_array().unwrap();
        let publishes: Vec<&Value> = spans
            .iter()
            .filter(|s| s["operationName"] == "publish")
            .collect();
        let delivers: Vec<&Value> = spans
            .iter()
            .filter(|s| s["operationName"] == "deliver")
            .collect();
        deliver_spans += delivers.len();
        if publishes.is_empty() {
            assert!(delivers.is_empty(), "deliveries without their publish span");
            continue;
        }
        message_traces += 1;
        assert_eq!(publishes.len(), 1, "one publish span per message trace");
        let p = publishes[0];
        assert_eq!(
            delivers.len(),
            4,
            "trace {}: one delivery span per receiver",
            t["traceID"]
        );
        assert_eq!(spans.len(), 5);
        let publisher = service(t, p);
        let mut receivers = BTreeSet::new();
        for d in &delivers {
            let refs = d["references"].as_array().unwrap();
            assert_eq!(refs.len(), 1);
            assert_eq!(refs[0]["refType"], "CHILD_OF");
            assert_eq!(refs[0]["spanID"], p["spanID"]);
            assert_eq!(refs[0]["traceID"], t["traceID"]);
            let rcv = service(t, d);
            assert_ne!(rcv, publisher);
            receivers.insert(rcv);
        }
        assert_eq!(receivers.len(), 4, "four distinct receivers");
        let all: BTreeSet<String> = (0..5).map(|i| format!("node-{i:04}")).collect();
        assert_eq!(
            receivers
                .iter()
                .chain([&publisher])
                .cloned()
                .collect::<BTreeSet<_>>(),
            all
        );
    }
    assert_eq!(
        message_traces, 15,
        "every published message is traced at sample ratio 1"
    );
    assert_eq!(
        deliver_spans as u64, r.summary.delivered,
        "one delivery span per delivery in run.json"
    );
    let received: u64 = r
        .nodes
        .iter()
        .map(|n| n.result.as_ref().unwrap().received)
        .sum();
    assert_eq!(deliver_spans as u64, received);

    // Each node's lifecycle is one trace under its derived id, with a span per state.
    let by_id: BTreeMap<&str, &Value> = data
        .iter()
        .map(|t| (t["traceID"].as_str().unwrap(), t))
        .collect();
    for i in 0..5u32 {
        let id = hex(&lifecycle_trace_id("test", i));
        let t = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("no lifecycle trace for node {i}"));
        let ops: Vec<&str> = t["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["operationName"].as_str().unwrap())
            .collect();
        assert!(ops.contains(&"lifecycle"), "{ops:?}");
        for st in [
            "state starting",
            "state listening",
            "state connected",
            "state subscribed",
            "state ready",
            "state running",
            "state draining",
        ] {
            assert!(ops.contains(&st), "node {i} has no `{st}` span: {ops:?}");
        }
        let services: BTreeSet<String> = t["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| service(t, s))
            .collect();
        assert_eq!(services, BTreeSet::from([format!("node-{i:04}")]));
    }

    // OTLP/JSON beside it, and the report names the slowest delivery's trace.
    let otlp = json_file(&out.dir.join("traces.otlp.json"));
    assert!(!otlp["resourceSpans"].as_array().unwrap().is_empty());
    let section = &serde_json::to_value(&r.sections.traces).unwrap();
    assert_eq!(section["collector"], "embedded");
    let slow = section["slowest_delivery"]["trace_id"]
        .as_str()
        .expect("slowest delivery");
    assert!(by_id.contains_key(slow));
    let report = read(out.dir.join("report.md"));
    assert!(
        report.contains("Slowest traced delivery") && report.contains(slow),
        "{report}"
    );
    // report.html names it too.
    let html = read(out.dir.join("report.html"));
    assert!(
        html.contains("Slowest traced delivery") && html.contains(slow),
        "report.html lacks the trace links"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_traces_one_message_in_n_and_off_means_no_collector() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(&plan("  traces: on\n  sample_ratio: 0.5"), &[], tmp.path()).await;
    let file = json_file(&out.dir.join("traces.json"));
    let publishes = file["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["spans"].as_array().unwrap())
        .filter(|s| s["operationName"] == "publish")
        .count();
    // Each node traces the messages the contract's sampling picks, and only those.
    let expected = (0..5u32)
        .flat_map(|i| (0..3u64).filter(move |&s| testbed_contract::protocol::sampled(i, s, 0.5)))
        .count();
    assert!(expected >= 5, "{expected}");
    assert_eq!(publishes, expected);

    let tmp = tempfile::tempdir().unwrap();
    let out = run_text(&plan("  traces: off"), &[], tmp.path()).await;
    assert!(!out.dir.join("traces.json").exists());
    assert!(out.record.sections.traces.is_none());
    assert!(out.dir.join("metrics.prom").exists());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.exists())
}

async fn prom_query(addr: &str, q: &str) -> Option<f64> {
    let enc: String = q
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (status, body) = request(
        addr,
        "GET",
        &format!("/api/v1/query?query={enc}"),
        "text/plain",
        b"",
    )
    .await
    .ok()?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_slice(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// A real Prometheus scrapes the orchestrator during a run; `promtool check metrics` accepts
/// the exposition; the scraped figures equal run.json's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_run_and_agrees_with_run_json() {
    let (Some(prometheus), Some(promtool)) = (find("prometheus"), find("promtool")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the `prometheus` package (.ci/run)"
        );
        eprintln!("SKIPPED: prometheus/promtool not installed (apt-get install -y prometheus)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 250ms\n  scrape_timeout: 200ms\nscrape_configs:\n  - job_name: testbed\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let mut prom = tokio::process::Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("prometheus.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");
    // Ready, and scraping our target, before the run starts (bounded wait, not a timing
    // assertion): Prometheus hands new targets to its scrapers about 5 s after it is ready,
    // longer than the whole run.
    let mut ready = false;
    for _ in 0..300 {
        if let Ok((200, body)) =
            request(&prom_addr, "GET", "/api/v1/targets", "text/plain", b"").await
            && serde_json::from_slice::<Value>(&body).is_ok_and(|v| {
                v["data"]["activeTargets"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty())
            })
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "prometheus did not become ready: {}",
        read(tmp.path().join("prometheus.log"))
    );

    let results = tmp.path().join("results");
    let text = plan(&format!(
        "  metrics_listen: \"127.0.0.1:{metrics_port}\"\n  metrics_linger: 3s"
    ));
    let out = run_text(&text, &[], &results).await;
    let r = &out.record;
    assert_eq!(
        r.outcome.status,
        orchestrator::record::Status::Passed,
        "{:?}",
        r.outcome.reasons
    );

    // promtool accepts the final exposition.
    let prom_file = out.dir.join("metrics.prom");
    let check = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom_file).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // Prometheus scraped the run, including after the final figures were in (the linger).
    let mut finished = None;
    for _ in 0..100 {
        finished = prom_query(
            &prom_addr,
            "max_over_time(pubsub_testbed_run_finished[10m])",
        )
        .await;
        if finished == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        finished,
        Some(1.0),
        "prometheus never scraped the final figures: {}",
        read(tmp.path().join("prometheus.log"))
    );
    let s = &r.summary;
    let q = |m: &str| format!("max_over_time({m}[10m])");
    assert_eq!(
        prom_query(&prom_addr, &q("pubsub_testbed_messages_published_total")).await,
        Some(s.messages_published as f64)
    );
    assert_eq!(
        prom_query(&prom_addr, &q("pubsub_testbed_messages_delivered_total")).await,
        Some(s.delivered as f64)
    );
    assert_eq!(
        prom_query(&prom_addr, &q("pubsub_testbed_messages_duplicate_total")).await,
        Some(s.duplicates as f64)
    );
    assert_eq!(
        prom_query(&prom_addr, &q("pubsub_testbed_messages_expected")).await,
        Some(s.expected_deliveries as f64)
    );
    assert_eq!(
        prom_query(&prom_addr, &q("pubsub_testbed_messages_missing")).await,
        Some((s.expected_deliveries - s.delivered) as f64)
    );
    assert_eq!(
        prom_query(
            &prom_addr,
            &q("pubsub_testbed_delivery_latency_seconds_count")
        )
        .await,
        Some(s.latency.unwrap().count as f64)
    );
    assert_eq!(
        prom_query(
            &prom_addr,
            "max_over_time(pubsub_testbed_nodes{state=\"done\"}[10m])"
        )
        .await,
        Some(5.0)
    );
    // Per-node resource series were scraped for every node.
    assert_eq!(
        prom_query(
            &prom_addr,
            "count(max_over_time(pubsub_testbed_node_rss_bytes[10m]))"
        )
        .await,
        Some(5.0)
    );
    let text = read(&prom_file);
    assert!(
        text.contains(&format!(
            "pubsub_testbed_messages_delivered_total {}",
            s.delivered
        )),
        "{text}"
    );
    prom.kill().await.ok();
}

#[test]
fn grafana_dashboard_command_writes_json() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("dash.json");
    let st = std::process::Command::new(orchestrator_bin())
        .args(["grafana-dashboard", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let d = json_file(&file);
    assert_eq!(d["uid"], "pubsub-testbed-run");
    assert!(d["panels"].as_array().unwrap().len() >= 8);
}
