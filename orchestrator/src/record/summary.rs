//! The fleet's figures in run.json: the summary, distributions, latency, delivery by group
//! pair and over time. Computed by [`crate::figures`], rendered by [`crate::report`].

use serde::{Deserialize, Serialize};

/// A distribution over nodes (or runs): exact order statistics, with the sample count.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Dist {
    pub count: u64,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub mean: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Number of deliveries in the merged histogram.
    pub count: u64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// One publisher group's lag behind its schedule (send − due), over all its messages.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PublishLag {
    pub group: String,
    /// Nodes of the group that reported a lag histogram (published something).
    pub publishers: u32,
    pub messages: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub nodes: u32,
    pub nodes_failed: u32,
    /// Nodes whose final result is missing (their deliveries cannot be counted).
    pub nodes_without_result: u32,
    pub messages_published: u64,
    /// (message, receiver) pairs where the receiver was subscribed when it was published.
    pub expected_deliveries: u64,
    pub delivered: u64,
    /// delivered / expected; absent when nothing was expected. Counts receivers whose
    /// result arrived; see `unverifiable_deliveries` for the others.
    pub delivery_ratio: Option<f64>,
    /// (message, receiver) pairs that cannot be checked: the receiver was subscribed by the
    /// plan to the message's topic but its result is missing (crashed or hung). Not in
    /// `expected_deliveries`; a run with any has a failed node.
    #[serde(default)]
    pub unverifiable_deliveries: u64,
    /// Deliveries to nodes that were not subscribed at publish time.
    pub unexpected_deliveries: u64,
    /// Delivery latency: receive − due time for paced publishing (so a publisher's lag is in
    /// it), receive − send time for back-to-back publishing (due = send).
    pub latency: Option<Latency>,
    /// Receive − send time, whatever the publishing: the latency without the publishers' lag
    /// (protocol 2 nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_since_send: Option<Latency>,
    /// Messages published with a due time (paced); the others were sent back to back.
    #[serde(default)]
    pub paced_messages: u64,
    /// Per publisher group: how late messages were sent against their schedule (send − due).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish_lag: Vec<PublishLag>,
    /// Application-level duplicate deliveries (same origin and sequence number twice).
    pub duplicates: u64,
    /// Duplicates filtered inside the pubsub router, summed over nodes reporting it.
    pub router_duplicates: Option<u64>,
    pub router_duplicates_per_delivery: Option<f64>,
    /// Published messages per second: (N − 1) / (last send − first send), N sends spanning
    /// N − 1 intervals.
    pub publish_rate_per_s: Option<f64>,
    /// Deliveries per second from the first publish to the end of the settle phase.
    pub delivery_rate_per_s: Option<f64>,
    pub peak_rss_bytes: Dist,
    pub cpu_s: Dist,
    /// Time to mesh over the nodes whose mesh reached its target (not over those that went
    /// ahead without one, nor over nodes that do not say whether they meshed).
    pub time_to_mesh_ms: Option<Dist>,
    /// Nodes that waited for a mesh and reached it (protocol 2's `meshed: true`).
    #[serde(default)]
    pub meshed_nodes: u32,
    /// Nodes that waited for a mesh and went ahead without one, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_meshed: Vec<u32>,
    /// Nodes that waited for a mesh but do not say whether they reached it (protocol 1): their
    /// `mesh_ms` may be the grace period of a node without a mesh, so it is left out.
    #[serde(default)]
    pub mesh_unknown: u32,
    /// From the first launch until the fleet finished setup (connected, subscribed, and each
    /// node meshed or gone ahead without a mesh: `meshed_nodes` says how many truly meshed).
    pub launch_to_ready_ms: Option<f64>,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    /// Per node, the largest PSS the orchestrator sampled from `/proc` (local runners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pss_bytes: Option<Dist>,
    /// Per node, the largest USS (Private_Clean + Private_Dirty) sampled from `/proc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uss_bytes: Option<Dist>,
    /// The fleet's PSS summed over one sampling sweep: the largest sum and the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_pss_peak_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_pss_last_bytes: Option<u64>,
    /// Nodes whose own figures disagree with the orchestrator's samples beyond the
    /// tolerance (docs/report-format.md), each with the figures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_anomalies: Vec<String>,
    /// The orchestrator process's CPU (user + system) during this run: the difference
    /// between its end and its launch, all threads (the sampler's and shaper's included).
    pub orchestrator_cpu_s: f64,
    /// The orchestrator's peak RSS during this run (`VmHWM`, reset when the run launched).
    pub orchestrator_peak_rss_bytes: u64,
    /// Whether the host's CPU was saturated during the measurement window (see
    /// `sections.host_load`); absent where the run could not sample the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_saturated: Option<bool>,
    /// CPU of the `/proc` sampler's own thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler_cpu_s: Option<f64>,
    /// Expected and delivered by publish time (seconds since the run started).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_over_time: Vec<DeliveryBucket>,
    /// First deliveries by receive time per group pair, with the network events on the same
    /// axis; only with more than one group or timed network events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_over_time: Option<ReceivedOverTime>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct DeliveryBucket {
    pub from_s: f64,
    pub to_s: f64,
    pub expected: u64,
    pub delivered: u64,
}

/// Deliveries by receive time: how many first deliveries each (origin group → receiver group)
/// pair received in each bucket of seconds since `zero_unix_ns`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReceivedOverTime {
    /// Time zero, ns since the Unix epoch: when the whole fleet had been launched (time zero
    /// of the network events).
    pub zero_unix_ns: u64,
    /// `fleet_launched`; records from before the run recorded that instant for every runner
    /// say `first_launch` (time zero was then the first launch).
    pub zero: String,
    /// Width of a bucket in seconds: 1, more for runs too long for 600 buckets.
    pub bucket_s: u64,
    /// Per pair with at least one delivery: `counts[i]` deliveries received in
    /// `[i·bucket_s, (i+1)·bucket_s)` seconds after time zero.
    pub pairs: Vec<PairOverTime>,
    /// Timed network events on the same axis, in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<AxisEvent>,
    /// Spans during which a partition was in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cuts: Vec<Cut>,
    /// Nodes that received messages but sent no receive-time counts (an implementation that
    /// does not report them): their deliveries are missing from `pairs`.
    #[serde(default)]
    pub receivers_without_counts: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PairOverTime {
    pub origin_group: String,
    pub receiver_group: String,
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AxisEvent {
    /// Seconds after time zero.
    pub at_s: f64,
    /// `partition`, `heal` or `set_link`.
    pub kind: String,
    /// What it does, e.g. `partition cut: left | right`.
    pub what: String,
}

/// A partition from the event that made it to the heal that undid it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Cut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The sets of groups cut from each other.
    pub sides: Vec<Vec<String>>,
    pub from_s: f64,
    /// Absent: never healed during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_s: Option<f64>,
}

impl Cut {
    /// Whether this cut separates the two groups.
    pub fn separates(&self, a: &str, b: &str) -> bool {
        let side = |g: &str| self.sides.iter().position(|s| s.iter().any(|x| x == g));
        matches!((side(a), side(b)), (Some(x), Some(y)) if x != y)
    }

    /// Whether the cut was in force at some moment of `[from_s, to_s)`.
    pub fn overlaps(&self, from_s: f64, to_s: f64) -> bool {
        self.from_s < to_s && self.to_s.is_none_or(|end| end > from_s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupPair {
    pub origin_group: String,
    pub receiver_group: String,
    pub expected: u64,
    pub delivered: u64,
    pub latency: Option<Latency>,
}
