//! The Go and JS nodes' histogram encodings, decoded by `testbed_contract::histogram::decode`.
//! The fixtures hold the latencies 0, 1, 7, 650, 651, 10 000, 2 000 000 and 3 600 000 000 µs;
//! each implementation's test suite rewrites its own with UPDATE_FIXTURES=1.

use testbed_contract::histogram::{MAX_LATENCY_US, SIGFIG, decode};

fn check(name: &str) {
    let path = format!("{}/../fixtures/latency-{name}.hdr", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let h = decode(&text).unwrap_or_else(|e| panic!("{name} histogram does not decode in Rust: {e}"));
    assert_eq!(h.len(), 8, "{name}: sample count");
    assert!(h.equivalent(h.max(), MAX_LATENCY_US), "{name}: max {}", h.max());
    assert!(h.equivalent(h.value_at_quantile(0.5), 650), "{name}: p50 {}", h.value_at_quantile(0.5));
    assert_eq!(h.sigfig(), SIGFIG, "{name}: significant figures");
    // Merges with a histogram of the contract's own bounds, as the orchestrator does.
    let mut fleet = testbed_contract::histogram::new_latency_histogram();
    fleet.add(&h).unwrap_or_else(|e| panic!("{name}: cannot merge: {e:?}"));
    assert_eq!(fleet.len(), 8);
}

#[test]
fn go_histogram_decodes() {
    check("go");
}

#[test]
fn js_histogram_decodes() {
    check("js");
}
