//! The contract of pubsub-testbed: what plan authors, the orchestrator and every node
//! implementation (Rust, Go, JS) agree on.
//!
//! - [`plan`]: the YAML test plan schema (v1), as serde types.
//! - [`protocol`]: the control channel messages between a node and the orchestrator.
//! - [`payload`]: the byte layout of a published pubsub message.
//! - [`results`]: what a node reports at the end, and the fleet summary of a run.
//! - [`histogram`]: the lossless, language-neutral histogram encoding used in results.

pub mod duration;
pub mod histogram;
pub mod payload;
pub mod plan;
pub mod protocol;
pub mod results;
pub mod selector;

/// Version of the control protocol spoken on the control channel. A node announces it in
/// `hello`; the orchestrator answers in the same version if it speaks it (see
/// [`SUPPORTED_PROTOCOLS`]) and refuses the node otherwise.
pub const PROTOCOL_VERSION: u32 = 2;

/// Control protocol versions an orchestrator accepts in `hello`. Version 2 only adds to
/// version 1 (docs/node-contract.md, "What a protocol 1 node lacks"): a protocol 1 node gets
/// a `welcome{protocol: 1}` and is never sent a message it does not know.
pub const SUPPORTED_PROTOCOLS: std::ops::RangeInclusive<u32> = 1..=PROTOCOL_VERSION;

/// Version of the plan schema (`version:` at the top of every plan).
pub const PLAN_SCHEMA_VERSION: u32 = 1;

/// Environment variables through which a runner tells a node who it is and where to report.
pub mod env {
    /// Control channel address: `tcp://HOST:PORT` or `unix:/path/to/socket`.
    pub const CONTROL_ADDR: &str = "TESTBED_CONTROL_ADDR";
    /// The node's global index in the fleet (0-based).
    pub const NODE_INDEX: &str = "TESTBED_NODE_INDEX";
    /// The run id, for logs and telemetry.
    pub const RUN_ID: &str = "TESTBED_RUN_ID";
    /// IP address the node listens on for libp2p (default 127.0.0.1).
    pub const LISTEN_IP: &str = "TESTBED_LISTEN_IP";
    /// Group id of the node (informational; the orchestrator's welcome is authoritative).
    pub const GROUP: &str = "TESTBED_GROUP";
    /// OTLP/HTTP endpoint for traces, when tracing is on.
    pub const OTLP_ENDPOINT: &str = "TESTBED_OTLP_ENDPOINT";
    /// Kubernetes Indexed Job: when NODE_INDEX is absent, the index comes from here.
    pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
    /// The run's secret (protocol 2): the node sends it in `hello` so the orchestrator can
    /// tell its own nodes from anything else that reaches the control port. Passed in the
    /// environment, never on a command line (where `ps` shows it); never logged.
    pub const RUN_SECRET: &str = "TESTBED_RUN_SECRET";
    /// A test aid of the Rust node: shift the node's wall clock by this many ns (signed),
    /// as if its machine's clock were off. Either one number for every node, or
    /// `INDEX:NS` pairs separated by commas (`1:50000000,2:-50000000`) for some nodes.
    pub const CLOCK_SKEW_NS: &str = "TESTBED_CLOCK_SKEW_NS";
    /// A test aid of the Rust node: a fault it injects into its own final result or its
    /// behaviour, so the orchestrator's checks of node data and the endings of a run can be
    /// tested with a real fleet. `KIND` for every node or `INDEX:KIND` pairs separated by
    /// commas; kinds: `corrupt_histogram` (latency histograms that do not decode),
    /// `extra_publishes` (one message more than it published), `stall_connect` (connect
    /// commands never acknowledged), `ignore_abort` (`abort` ignored).
    pub const FAULT: &str = "TESTBED_FAULT";
}
