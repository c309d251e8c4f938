//! The sections of run.json that features add, each a typed struct: a run without the
//! feature has no section (`None`), and a section that does not parse is an error when the
//! record is read, never a silently missing part of the report.
//!
//! Who fills which: `network` and `shaper` the run ([`crate::run`]), `churn` and
//! `implementations` the figures ([`crate::figures`]), `traces` and `metrics` the telemetry
//! ([`crate::telemetry`]), `kubernetes` the kube runner (`crate::k8s`). The report renders
//! every one ([`crate::report`]).

use super::churn_log::{LiveFigures, Sample};
use super::node::NodeStatus;
use super::summary::{Dist, Latency};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use testbed_contract::plan::{LinkParams, Network};

/// Every optional section of a run record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sections {
    /// Deliveries under churn, counted per delivery window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnSection>,
    /// Every node's clock offset from the orchestrator's, measured at start and end, and
    /// what it means for the latencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockSection>,
    /// Figures by node implementation, when more than one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementations: Option<ByImplementation>,
    /// What Kubernetes saw of the run's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSection>,
    /// Lock-step publish phases: every message's time to full delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockstep: Option<LockstepSection>,
    /// The Prometheus metrics of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSection>,
    /// Hops per first delivery, from the delivery trees the nodes' sources give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hops: Option<HopsSection>,
    /// The host's CPU load during the run, and whether it bounded the figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_load: Option<HostLoadSection>,
    /// How late each node's event loop ran its own probe timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_lag: Option<LoopLagSection>,
    /// The network as configured (network emulation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSection>,
    /// The network shaper's counters, as it reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaper: Option<netsim::NetsimStats>,
    /// Where the traces are, and the ones to open first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces: Option<TracesSection>,
    /// The witnesses' counts against the fleet's (the plan's `witness:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<WitnessSection>,
}

impl Sections {
    pub fn is_empty(&self) -> bool {
        let Sections {
            churn,
            clock,
            hops,
            host_load,
            implementations,
            kubernetes,
            lockstep,
            loop_lag,
            metrics,
            network,
            shaper,
            traces,
            witness,
        } = self;
        churn.is_none()
            && clock.is_none()
            && hops.is_none()
            && host_load.is_none()
            && implementations.is_none()
            && kubernetes.is_none()
            && lockstep.is_none()
            && loop_lag.is_none()
            && metrics.is_none()
            && network.is_none()
            && shaper.is_none()
            && traces.is_none()
            && witness.is_none()
    }
}

// ---------------------------------------------------------------------------------------
// lockstep

/// The lock-step publish phases of a run, in workload order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockstepSection {
    pub phases: Vec<LockstepPhase>,
    /// The workload span, ms: from the start of the first workload phase to the moment the
    /// orchestrator saw the last lock-step message at every subscriber (the reference
    /// benchmark's duration, without the process launch). Absent when a lock-step message did
    /// not reach everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_span_ms: Option<f64>,
}

/// One lock-step publish phase: each message's time to full delivery, from the publisher's
/// send time (its result's `published`) to the last subscriber's receive time (its
/// `delivered` event), both as the nodes measured them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockstepPhase {
    /// The phase's index in the workload.
    pub phase: usize,
    pub topic: String,
    /// Messages the phase was to publish.
    pub planned: u32,
    /// Messages that reached every subscriber.
    pub complete: u32,
    /// Time to full delivery over the complete messages with a known send time (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_delivery: Option<Latency>,
    /// The message that took longest to reach every subscriber, or the first incomplete one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest: Option<LockstepMessage>,
    pub messages: Vec<LockstepMessage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockstepMessage {
    pub origin: u32,
    pub seq: u64,
    /// The publisher's send time (ns since the Unix epoch), from its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_ns: Option<u64>,
    /// The subscribers it had to reach (every subscriber of the topic but its origin).
    pub receivers: u32,
    /// Each receiver's first delivery: `[node, receive ns]`, as the receiver reported it.
    pub delivered: Vec<[u64; 2]>,
    /// The subscribers it never reached (the run stopped there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u32>,
    /// Send to last delivery, ms; absent when incomplete or the send time is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_delivery_ms: Option<f64>,
}

// ---------------------------------------------------------------------------------------
// witness

/// The plan's witnesses: listen-only subscribers that are not part of the fleet, each with
/// what it counted against what the fleet's publishers recorded. Definitions in
/// docs/report-format.md ("Witness").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WitnessSection {
    /// Messages the fleet's publishers recorded (the summary's `messages_published`).
    pub messages_published: u64,
    pub witnesses: Vec<WitnessFigures>,
    /// Each witness's own record, as a fleet node's is kept under `nodes`.
    pub nodes: Vec<super::node::NodeRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WitnessFigures {
    pub index: u32,
    pub implementation: String,
    /// The fleet nodes it dialled.
    pub peers: Vec<u32>,
    /// Distinct published messages in its seen-set; absent without a result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u64>,
    /// Its own count of distinct messages delivered (the result's `received`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    /// Every delivery to it: distinct ones plus duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<u64>,
    /// Published messages it never received.
    pub missing: u64,
    /// Messages in its seen-set that no publisher recorded.
    pub unknown: u64,
    /// It received exactly the published messages, and its own count says so too.
    pub agrees: bool,
    /// One line: the agreement, or what differs.
    pub verdict: String,
}

// ---------------------------------------------------------------------------------------
// host load

/// One interval of the host-wide CPU sampler (`/proc/stat`): every process on the machine,
/// not only the fleet's.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct HostLoadSample {
    /// End of the interval, ms after the first launch.
    pub t_ms: f64,
    /// Length of the interval, ms.
    pub interval_ms: f64,
    /// Share of all CPUs' time in the interval that was not idle (0..1; iowait counts idle).
    pub busy_share: f64,
    /// Runnable threads at the end of the interval (`procs_running`, the sampler included).
    pub procs_running: u32,
}

/// The host's CPU during the run and the verdict on the measurement window: was the machine,
/// rather than the protocol, what bounded the latencies? Definition in docs/report-format.md.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostLoadSection {
    pub cpus: u32,
    /// The sampler's period, ms.
    pub sample_period_ms: f64,
    /// `publish_to_settle` (first publish → end of settle) or `whole_run` (nothing was
    /// published).
    pub window: String,
    /// The window, ms after the first launch.
    pub window_from_ms: f64,
    pub window_to_ms: f64,
    /// Intervals overlapping the window: what the figures below are computed from.
    pub window_samples: u64,
    /// Mean busy share over the window's intervals, weighted by their length.
    pub busy_share_mean: f64,
    /// Share of the window's time in intervals at or above `busy_threshold`.
    pub saturated_share: f64,
    pub run_queue_mean: f64,
    pub run_queue_max: u32,
    /// An interval is saturated at this busy share or above.
    pub busy_threshold: f64,
    /// The host was saturated when `saturated_share` reached this.
    pub saturated_share_threshold: f64,
    pub host_saturated: bool,
    /// Every interval of the run, for the chart and for reading again.
    pub samples: Vec<HostLoadSample>,
}

// ---------------------------------------------------------------------------------------
// loop lag

/// Every node's event-loop lag (how late its loop got to its own probe timer), and the
/// fleet's spread of it, so a stalled or starved node shows beside the latency. Definition in
/// docs/report-format.md ("Event-loop lag").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoopLagSection {
    /// The probe's period, ms (the largest the nodes reported).
    pub interval_ms: u32,
    /// `publish_to_settle` (first publish → end of settle) or `whole_run` (nothing was
    /// published): the window of `node_window_max` and of each node's `window_max_ms`.
    pub window: String,
    pub nodes_measured: u32,
    /// Nodes without the figure: implementations that do not report it, nodes without a
    /// result (crashed, killed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_measured: Vec<u32>,
    /// Each measured node's p99 over its run, spread over the nodes.
    pub node_p99: LagSpread,
    /// Each measured node's largest lag in the window, spread over the nodes with a tick
    /// there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_window_max: Option<LagSpread>,
    /// The node with the largest lag in the window (over the run when none had a tick in it).
    pub worst: NodeLoopLag,
    /// Every measured node, by index.
    pub nodes: Vec<NodeLoopLag>,
}

/// Nearest-rank p50, p99 and the max of one value per node, ms.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct LagSpread {
    pub nodes: u32,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One node's loop lag: over every tick of its run, and the largest in the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeLoopLag {
    pub index: u32,
    pub group: String,
    pub ticks: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Largest lag of the ticks due in the whole seconds that overlap the window; absent
    /// when the node had no tick there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_max_ms: Option<f64>,
}

// ---------------------------------------------------------------------------------------
// hops

/// How many hops each first delivery took from its publisher, from every message's delivery
/// tree: each receiver names the peer its first copy came from, the publisher is hop 0 and a
/// receiver is one hop further than the node it got the message from. Definition in
/// docs/report-format.md ("Hops").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HopsSection {
    /// First deliveries whose hop count is known (their chain reaches the publisher).
    pub deliveries: u64,
    /// Mean and largest hop count over those; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_hops: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hops: Option<u32>,
    /// Deliveries per hop count, ascending; hop counts without deliveries are left out.
    pub histogram: Vec<HopCount>,
    /// First copies from a peer that is not a node of the fleet.
    pub unknown_source: u64,
    /// First copies from a node whose own first copy of that message is not listed (its list
    /// was full, or it does not report sources), so the chain stops short of the publisher.
    pub broken_chain: u64,
    /// Nodes that listed their first deliveries' sources.
    pub nodes_reporting: u32,
    /// Nodes that received messages but listed no sources (implementations that do not
    /// report them; floodsub).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_reporting: Vec<u32>,
    /// Nodes whose list was full: their later first deliveries are not counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capped: Vec<u32>,
    /// First deliveries left out of full lists, over the fleet.
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HopCount {
    pub hops: u32,
    pub deliveries: u64,
}

// ---------------------------------------------------------------------------------------
// network

/// The network as configured, beside the numbers: every group pair's resolved profile, the
/// timed events, and when their clock started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkSection {
    /// The plan's `network:` section.
    pub section: Network,
    /// Every (from, to) group pair's profile, every value resolved.
    pub links: Vec<NetworkLink>,
    /// When the clock of the timed events started, ms after the first launch.
    pub events_zero_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkLink {
    pub from: String,
    pub to: String,
    pub profile: LinkParams,
}

// ---------------------------------------------------------------------------------------
// churn

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Messages published.
    pub messages: u64,
    /// (message, receiver) pairs with a full window at a receiver whose seen-set is known.
    pub expected: u64,
    pub received: u64,
    pub missed: u64,
    /// Full windows at receivers without a seen-set (killed): neither hit nor miss.
    pub unverifiable: u64,
    /// Deliveries to receivers without a full window: neither hit nor miss.
    pub outside_window: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.messages += o.messages;
        self.expected += o.expected;
        self.received += o.received;
        self.missed += o.missed;
        self.unverifiable += o.unverifiable;
        self.outside_window += o.outside_window;
    }

    pub fn ratio(&self) -> Option<f64> {
        (self.expected > 0).then(|| self.received as f64 / self.expected as f64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicCounts {
    pub topic: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemovedNode {
    pub index: u32,
    pub mode: String,
    /// Seconds after the phase started.
    pub at_s: f64,
    /// Whether the node's own result (seen-set, subscriptions) was kept.
    pub has_result: bool,
    /// Whether a snapshot of its counters was kept.
    pub has_snapshot: bool,
}

/// The `churn` section: deliveries counted under the window rule (docs/simulator.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnSection {
    pub duration_s: f64,
    pub heartbeat_ms: f64,
    pub delivery_window_ms: f64,
    pub remove_mode: String,
    /// The event log, one line per event, beside run.json.
    pub events_file: String,
    pub events_total: u64,
    /// Per event kind: how many ended with each outcome.
    pub events: BTreeMap<String, BTreeMap<String, u64>>,
    pub peers_added: u32,
    pub peers_removed: u32,
    pub removed: Vec<RemovedNode>,
    pub total: Counts,
    pub per_topic: Vec<TopicCounts>,
    /// Application duplicates over every node (results, else last snapshots). Nodes count
    /// duplicates per node, not per topic, so there is no per-topic figure.
    pub duplicates: u64,
    /// Messages known only from the orchestrator's record (their publisher left no result).
    pub reconstructed_messages: u64,
    /// Peers, topics, connections … at every heartbeat.
    pub samples: Vec<Sample>,
    /// The last live figures of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_live: Option<LiveFigures>,
}

// ---------------------------------------------------------------------------------------
// implementations

/// Everything by implementation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ByImplementation {
    /// One entry per implementation label, in plan order of first appearance.
    pub implementations: Vec<ImplFigures>,
    /// Every (publisher, receiver) pair of labels with something expected or measured.
    pub pairs: Vec<ImplPair>,
}

/// Figures of the nodes of one implementation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImplFigures {
    /// `rust`, `go`, `js`; with the plan's `impl_version` when a group sets one
    /// (`go@v0.14.2`), so two versions in one fleet are told apart.
    pub label: String,
    pub implementation: String,
    /// What the nodes said they run (`hello.impl_version`), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub nodes: u32,
    /// Nodes that ended in failure (crashed, hung, failed).
    pub nodes_failed: u32,
    pub messages_published: u64,
    /// Distinct messages received, summed over the nodes.
    pub received: u64,
    /// Application-level duplicate deliveries, summed over the nodes.
    pub duplicates: u64,
    /// Duplicates filtered by the routers, summed over nodes that report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_duplicates: Option<u64>,
    /// Peak resident set size per node (bytes).
    pub peak_rss_bytes: Dist,
    /// Resident set size per node at the end (bytes).
    pub final_rss_bytes: Dist,
    /// CPU time per node, user + system (seconds).
    pub cpu_s: Dist,
}

/// Delivery and latency from the nodes of one implementation to those of another.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImplPair {
    pub publisher: String,
    pub receiver: String,
    pub expected: u64,
    pub delivered: u64,
    /// delivered / expected; absent when nothing was expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
}

// ---------------------------------------------------------------------------------------
// traces and metrics

/// The `traces` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TracesSection {
    /// `embedded` (this orchestrator's collector) or `external`.
    pub collector: String,
    pub endpoint: String,
    pub sample_ratio: f64,
    /// Files in the results folder (embedded collector only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<CollectorStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<TraceFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest_delivery: Option<SlowestDelivery>,
    /// The lifecycle trace of every node that did not finish normally.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_lifecycles: Vec<NodeTrace>,
}

/// What the embedded collector received.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CollectorStats {
    pub requests: u64,
    pub rejected_requests: u64,
    pub spans: u64,
    pub dropped_spans: u64,
}

/// Facts about the collected traces.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TraceFacts {
    pub traces: u64,
    pub spans: u64,
    /// Spans by operation name (`publish`, `deliver`, `lifecycle`, `state …`).
    pub by_operation: BTreeMap<String, u64>,
    /// The longest `deliver` span (its duration is the delivery latency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest_delivery: Option<SlowDelivery>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SlowDelivery {
    pub trace_id: String,
    pub service: String,
    pub latency_us: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SlowestDelivery {
    pub trace_id: String,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Receiving node (service name).
    pub receiver: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeTrace {
    pub node: u32,
    pub service: String,
    pub status: NodeStatus,
    pub trace_id: String,
}

/// The `metrics` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricsSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The final exposition (Prometheus text format 0.0.4), beside run.json.
    pub file: String,
    /// Nodes' own libp2p metrics endpoints (`telemetry.node_metrics`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_endpoints: Vec<(String, String)>,
}

// ---------------------------------------------------------------------------------------
// clock

/// Clock offsets over the control channel (ping/pong), at start and after the last phase.
/// An offset θ is the node's clock minus the orchestrator's, without any correction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClockSection {
    /// `telemetry.clock_correction` as planned: `auto`, `on` or `off`.
    pub setting: String,
    /// Whether node times were corrected (each node told its start offset).
    pub corrected: bool,
    /// Pings per node per measurement; the one of smallest round trip is kept.
    pub pings: u32,
    pub nodes: Vec<NodeClock>,
    /// Largest |θ| measured (start or end).
    pub max_abs_offset_ns: Option<u64>,
    /// Largest uncertainty of a kept sample (half its round trip).
    pub max_uncertainty_ns: Option<u64>,
    /// Largest |θ_end − θ_start|.
    pub max_drift_ns: Option<u64>,
    /// Bound on the clock error in any one latency: the two largest node error bounds
    /// added (docs/report-format.md). Absent when a node was not measured.
    pub latency_error_bound_ns: Option<u64>,
    /// Nodes without a clock measurement (no pong; protocol 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmeasured: Vec<u32>,
    /// Nodes measured but not corrected though correction was on: their implementation
    /// does not take the `clock` command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncorrected: Vec<u32>,
}

/// One node's clock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeClock {
    pub index: u32,
    pub implementation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<ClockSample>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<ClockSample>,
    /// The offset the node was told to subtract (`clock` command); absent: uncorrected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_ns: Option<i64>,
    /// Bound on this node's clock error in its timestamps during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_bound_ns: Option<u64>,
}

/// The kept ping of a measurement: θ = at − (t0 + t3)/2, uncertainty (t3 − t0)/2.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClockSample {
    pub offset_ns: i64,
    pub uncertainty_ns: u64,
}

// ---------------------------------------------------------------------------------------
// kubernetes

/// What Kubernetes saw: every pod of the run and the problems it had.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KubernetesSection {
    pub namespace: String,
    /// Nodes per pod (`--nodes-per-pod`); absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_per_pod: Option<u32>,
    pub pods: Vec<PodRecord>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodRecord {
    pub pod: String,
    /// `the coordinator`, `node N`, `nodes N-M` (several per pod), `the Job` or `a pod`
    /// (older records: `coordinator`, `node N`, `other`).
    pub role: String,
    pub phase: String,
    pub problem: Option<String>,
}
