//! Property tests with a fixed number of cases (never timed): no plan the loader accepts can
//! make a run's arithmetic panic or overflow, the loader itself never panics on any text,
//! and the control channel's decoder never panics on any line.

mod support;

use orchestrator::plan;
use orchestrator::run::RunOptions;
use orchestrator::spec::RunSpec;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use testbed_contract::protocol::NodeMsg;
use tokio::time::Instant;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Durations from nothing to far past what a clock holds, weighted to the edges.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        (1u64..1_000_000).prop_map(Duration::from_nanos),
        (1u64..100_000).prop_map(Duration::from_millis),
        (1u64..10_000_000).prop_map(Duration::from_secs),
        (1u64..u64::MAX / 2).prop_map(Duration::from_secs),
    ]
}

fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1e-300),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        (1e-6f64..1e9),
        Just(-1.0),
    ]
}

fn text(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

#[derive(Debug)]
struct Numbers {
    timeout: Duration,
    wait: Duration,
    settle: Duration,
    mesh: Duration,
    linger: Duration,
    heartbeat: Duration,
    rate: f64,
    count: u32,
    size: u32,
    node: u32,
    nodes: u32,
}

fn numbers() -> impl Strategy<Value = Numbers> {
    (
        (
            duration(),
            duration(),
            duration(),
            duration(),
            duration(),
            duration(),
        ),
        (rate(), any::<u32>(), any::<u32>(), any::<u32>(), 1u32..20),
    )
        .prop_map(
            |(
                (timeout, wait, settle, mesh, linger, heartbeat),
                (rate, count, size, node, nodes),
            )| {
                Numbers {
                    timeout,
                    wait,
                    settle,
                    mesh,
                    linger,
                    heartbeat,
                    rate,
                    count,
                    size,
                    node,
                    nodes,
                }
            },
        )
}

fn plan_text(n: &Numbers) -> String {
    format!(
        "version: 1\nname: prop\ntimeout: {}\ngroups:\n  - id: peers\n    count: {}\n    gossipsub:\n      heartbeat: {}\nworkload:\n  - subscribe:\n      topics: [t]\n      mesh_timeout: {}\n  - publish:\n      topic: t\n      count: {}\n      rate: {:e}\n      size: {}\n      nodes: {}\n  - wait: {}\n  - settle:\n      timeout: {}\ntelemetry:\n  metrics_linger: {}\n",
        text(n.timeout),
        n.nodes,
        text(n.heartbeat),
        text(n.mesh),
        n.count,
        n.rate,
        n.size,
        n.node,
        text(n.wait),
        text(n.settle),
        text(n.linger),
    )
}

fn options(dir: &Path) -> RunOptions {
    support::options(dir)
}

proptest! {
    #![proptest_config(config())]

    /// Every duration of a validated plan, and every sum the run forms from them, fits the
    /// clock many times over; the publish allowance is finite; the spec resolves.
    #[test]
    fn no_validating_plan_overflows_the_runs_arithmetic(n in numbers()) {
        let text = plan_text(&n);
        let Ok(loaded) = plan::load_text(Path::new("prop.yaml"), &text, &BTreeMap::new()) else {
            return Ok(());
        };
        let p = &loaded.plan;
        let now = Instant::now();
        let durations = [p.timeout, n.wait, n.settle, n.mesh, n.linger, n.heartbeat];
        let total = durations.iter().fold(Duration::ZERO, |a, d| a.saturating_add(*d));
        prop_assert!(now.checked_add(total.saturating_mul(4)).is_some(), "{text}");
        let allowance = orchestrator::workload::publish_allowance(n.count, Some(n.rate));
        prop_assert!(now.checked_add(allowance).is_some(), "{text}");
        prop_assert!(n.node < n.nodes, "a selector past the fleet validated: {text}");
        let tmp = tempfile::tempdir().unwrap();
        prop_assert!(RunSpec::resolve(&loaded, &options(tmp.path())).is_ok(), "{text}");
    }

    /// Arbitrary text never panics the loader; refusals name a file position.
    #[test]
    fn the_loader_never_panics(s in "(?s).{0,400}") {
        if let Err(e) = plan::load_text(Path::new("x.yaml"), &s, &BTreeMap::new()) {
            prop_assert!(e.to_string().contains("x.yaml"));
        }
    }

    /// A plan's lines shuffled with hostile values never panic the loader.
    #[test]
    fn hostile_values_never_panic_the_loader(
        v in prop_oneof![
            Just("4294967295".to_string()), Just("-1".into()), Just("1e-300".into()),
            Just(".nan".into()), Just("*a".into()), Just("&a [*a, *a]".into()),
            Just("\"..\"".into()), Just("1ns".into()), Just("584942417355y".into()),
            "[ -~]{0,20}",
        ],
        field in 0usize..6,
    ) {
        let fields = ["timeout", "name", "seed", "version", "runner", "topology"];
        let text = format!(
            "version: 1\nname: p\ngroups:\n  - id: a\n    count: 2\nworkload:\n  - wait: 1s\n{}: {v}\n",
            fields[field]
        );
        let _ = plan::load_text(Path::new("h.yaml"), &text, &BTreeMap::new());
    }

    /// The control decoder never panics on any line a peer could send.
    #[test]
    fn the_control_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<NodeMsg>(&bytes);
    }

    /// Nor on JSON that looks like the protocol: every message type with fields of any type.
    #[test]
    fn protocol_shaped_json_never_panics_the_decoder(
        kind in prop_oneof![
            Just("hello"), Just("listening"), Just("state"), Just("ack"), Just("snapshot"),
            Just("signal"), Just("result"), Just("pong"), Just("delivered"), Just("nope"),
        ],
        key in "[a-z_]{1,12}",
        value in prop_oneof![
            Just(serde_json::json!(u64::MAX)), Just(serde_json::json!(-1)),
            Just(serde_json::json!(1e308)), Just(serde_json::json!(null)),
            Just(serde_json::json!("x")), Just(serde_json::json!([])), Just(serde_json::json!({})),
        ],
    ) {
        let mut m = serde_json::json!({ "type": kind, "protocol": 2, "index": 0, "pid": 1 });
        m[key] = value;
        let _ = serde_json::from_value::<NodeMsg>(m);
    }
}
