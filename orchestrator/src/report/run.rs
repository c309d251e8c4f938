//! The report of one run as one document: its sections in the order a person reads them.
//! report.md and report.html are two renderings of this document, so they always carry the
//! same sections (a test compares their headings). Each section is built in its own file
//! under [`super::sections`] from the record alone; a section without data adds nothing.

use super::doc::{Doc, Span};
use super::sections;
use crate::chart::ChartError;
use crate::record::RunRecord;

/// The document of `r`'s reports.
pub fn build(r: &RunRecord) -> Result<Doc, ChartError> {
    let mut doc = Doc::new(sections::head::title(r));
    sections::head::add_to(&mut doc, r);
    sections::summary::add_to(&mut doc, r);
    sections::summary::add_assertions(&mut doc, r);
    sections::charts::add_to(&mut doc, r)?;
    sections::churn::add_to(&mut doc, r)?;
    sections::lockstep::add_to(&mut doc, r);
    sections::witness::add_to(&mut doc, r);
    sections::phases::add_to(&mut doc, r);
    sections::groups::add_to(&mut doc, r);
    sections::implementations::add_to(&mut doc, r);
    sections::network::add_to(&mut doc, r);
    sections::clock::add_to(&mut doc, r);
    sections::over_time::add_to(&mut doc, r);
    sections::receive_time::add_to(&mut doc, r)?;
    sections::nodes::add_to(&mut doc, r);
    sections::traces::add_to(&mut doc, r);
    doc.rule();
    doc.para(vec![
        Span::text("All figures are measured in this run; "),
        Span::Code("run.json".into()),
        Span::text(
            " beside this file holds every node's raw result. See docs/report-format.md for how each figure is computed.",
        ),
    ]);
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::churn_log::Sample;
    use crate::record::sections::{
        ByImplementation, ChurnSection, Counts, ImplFigures, ImplPair, MetricsSection, NetworkLink,
        NetworkSection, TracesSection,
    };
    use crate::record::{
        AssertionOutcome, DeliveryBucket, GroupPair, HostFacts, Latency, NodeRecord, NodeStatus,
        Outcome, PairOverTime, PhaseRecord, ReceivedOverTime, Status, Summary, Versions,
    };
    use crate::report::{doc_md, html};
    use std::collections::BTreeMap;

    fn node(index: u32, status: NodeStatus) -> NodeRecord {
        serde_json::from_value(serde_json::json!({
            "index": index, "group": "a", "implementation": "rust", "listen_addrs": [],
            "status": status, "last_state": "done", "log": format!("logs/node-{index:04}.log"),
            "timeline": [
                { "state": "starting", "at_ns": 1_000_000 },
                { "state": "done", "at_ns": 9_000_000 },
            ],
        }))
        .unwrap()
    }

    /// A record without sections, as a passing run of one group has.
    fn plain() -> RunRecord {
        RunRecord {
            schema: crate::record::RECORD_SCHEMA,
            run_id: "r1".into(),
            plan_name: "p".into(),
            plan_file: "p.yaml".into(),
            command: vec!["orchestrator".into(), "run".into()],
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:10Z".into(),
            duration_s: 10.0,
            runner: "local".into(),
            params: BTreeMap::new(),
            versions: Versions {
                testbed: "0".into(),
                node_implementations: BTreeMap::new(),
            },
            host: HostFacts {
                hostname: "h".into(),
                os: "linux".into(),
                kernel: "6".into(),
                cpu_model: "cpu".into(),
                cpus: 2,
                memory_bytes: 1 << 30,
            },
            outcome: Outcome {
                status: Status::Passed,
                reasons: vec![],
            },
            summary: Summary::default(),
            assertions: vec![],
            phases: vec![PhaseRecord {
                index: 0,
                kind: "publish".into(),
                started_ms: 1.0,
                duration_ms: 2.0,
                ok: true,
                note: None,
            }],
            group_pairs: vec![],
            nodes: vec![node(0, NodeStatus::Ok), node(1, NodeStatus::Ok)],
            sections: Default::default(),
        }
    }

    /// A record with every section a report can have.
    fn full() -> RunRecord {
        let mut r = plain();
        r.outcome = Outcome {
            status: Status::NodeFailed,
            reasons: vec!["node 1 crashed".into()],
        };
        r.nodes[1] = node(1, NodeStatus::Crashed);
        r.assertions = vec![AssertionOutcome {
            assertion: "delivery_ratio >= 1".into(),
            actual: Some(0.5),
            passed: false,
        }];
        let latency = Latency {
            count: 3,
            ..Latency::default()
        };
        r.group_pairs = ["a", "b"]
            .iter()
            .flat_map(|o| ["a", "b"].map(|t| (o.to_string(), t.to_string())))
            .map(|(origin_group, receiver_group)| GroupPair {
                origin_group,
                receiver_group,
                expected: 2,
                delivered: 1,
                latency: Some(latency),
            })
            .collect();
        r.summary.delivery_over_time = vec![
            DeliveryBucket {
                from_s: 0.0,
                to_s: 1.0,
                expected: 2,
                delivered: 2,
            },
            DeliveryBucket {
                from_s: 1.0,
                to_s: 2.0,
                expected: 2,
                delivered: 1,
            },
        ];
        r.summary.received_over_time = Some(ReceivedOverTime {
            zero_unix_ns: 1,
            zero: "fleet_launched".into(),
            bucket_s: 1,
            pairs: vec![PairOverTime {
                origin_group: "a".into(),
                receiver_group: "b".into(),
                counts: vec![1, 2],
            }],
            ..ReceivedOverTime::default()
        });
        let s = &mut r.sections;
        s.churn = Some(ChurnSection {
            duration_s: 60.0,
            heartbeat_ms: 1000.0,
            delivery_window_ms: 5000.0,
            remove_mode: "graceful".into(),
            events_file: "events.jsonl".into(),
            events_total: 1,
            events: BTreeMap::from([(
                "add_peer".to_string(),
                BTreeMap::from([("ok".to_string(), 1)]),
            )]),
            peers_added: 1,
            peers_removed: 0,
            removed: vec![],
            total: Counts::default(),
            per_topic: vec![],
            duplicates: 0,
            reconstructed_messages: 0,
            samples: vec![Sample::default(), Sample::default()],
            last_live: None,
        });
        s.implementations = Some(ByImplementation {
            implementations: vec![ImplFigures {
                label: "rust".into(),
                ..ImplFigures::default()
            }],
            pairs: vec![ImplPair {
                publisher: "rust".into(),
                receiver: "rust".into(),
                ..ImplPair::default()
            }],
        });
        s.network = Some(NetworkSection {
            section: Default::default(),
            links: vec![NetworkLink {
                from: "a".into(),
                to: "b".into(),
                profile: Default::default(),
            }],
            events_zero_ms: 1.0,
        });
        s.traces = Some(TracesSection {
            collector: "embedded".into(),
            endpoint: "http://127.0.0.1:1".into(),
            sample_ratio: 1.0,
            files: vec![],
            received: None,
            facts: None,
            slowest_delivery: None,
            failed_lifecycles: vec![],
        });
        s.metrics = Some(MetricsSection {
            url: None,
            file: "metrics.prom".into(),
            node_endpoints: vec![],
        });
        r
    }

    fn md_headings(md: &str) -> Vec<String> {
        md.lines()
            .filter(|l| l.starts_with('#'))
            .map(|l| l.replace('\\', ""))
            .collect()
    }

    /// `<hN …>text</hN>` of the page, as Markdown headings.
    fn html_headings(page: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = page;
        while let Some(i) = rest.find("<h") {
            rest = &rest[i + 2..];
            let Some(level) = rest[..1]
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=3).contains(l))
            else {
                continue;
            };
            let start = rest.find('>').unwrap() + 1;
            let end = rest.find(&format!("</h{level}>")).unwrap();
            let text = rest[start..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&amp;", "&");
            out.push(format!("{} {text}", "#".repeat(level)));
            rest = &rest[end..];
        }
        out
    }

    /// The loop lag sits in the summary, beside the latency, and names the worst node.
    #[test]
    fn loop_lag_rows_name_the_worst_node() {
        use crate::record::sections::{LagSpread, LoopLagSection, NodeLoopLag};
        let mut r = plain();
        let worst = NodeLoopLag {
            index: 3,
            group: "sub".into(),
            ticks: 90,
            p50_ms: 0.08,
            p99_ms: 0.4,
            max_ms: 512.0,
            window_max_ms: Some(512.0),
        };
        r.sections.loop_lag = Some(LoopLagSection {
            interval_ms: 100,
            window: "publish_to_settle".into(),
            nodes_measured: 4,
            not_measured: vec![4],
            node_p99: LagSpread {
                nodes: 4,
                p50_ms: 0.1,
                p99_ms: 0.4,
                max_ms: 0.4,
            },
            node_window_max: Some(LagSpread {
                nodes: 4,
                p50_ms: 0.3,
                p99_ms: 512.0,
                max_ms: 512.0,
            }),
            worst: worst.clone(),
            nodes: vec![worst],
        });
        let md = doc_md::render(&build(&r).unwrap());
        let summary = &md[md.find("## Summary").unwrap()..];
        for text in [
            "event-loop lag (100 ms probe), each node's p99 over its run",
            "0.100 ms / 0.400 ms / 0.400 ms",
            "1 not measured",
            "largest event-loop lag in the publish window",
            "512.0 ms",
            "at node 3 (group sub)",
        ] {
            assert!(summary.contains(text), "{text}: {summary}");
        }
        // Without the section, no such rows.
        assert!(!doc_md::render(&build(&plain()).unwrap()).contains("event-loop lag"));
    }

    #[test]
    fn report_md_and_report_html_carry_the_same_sections() {
        for r in [plain(), full()] {
            let doc = build(&r).unwrap();
            let md = md_headings(&doc_md::render(&doc));
            assert_eq!(md, html_headings(&html::render(&doc)), "{r:?}");
            assert!(md.len() > 3, "{md:?}");
        }
        let md = md_headings(&doc_md::render(&build(&full()).unwrap()));
        for section in [
            "Why it did not pass",
            "Summary",
            "Assertions",
            "Charts",
            "Churn",
            "Phases",
            "By group (origin → receiver)",
            "By implementation",
            "Network",
            "Delivery over time",
            "Deliveries by receive time",
            "Nodes that did not finish normally",
            "Traces and metrics",
        ] {
            assert!(md.contains(&format!("## {section}")), "{section}: {md:?}");
        }
    }
}
