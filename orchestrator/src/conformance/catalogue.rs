//! Every check of the conformance run, in the order the report lists them, with what a
//! conforming node does (docs/node-contract.md names the sections, §N).

/// Every check, in the order the report lists them: (id, what a conforming node does).
pub const CATALOGUE: &[(&str, &str)] = &[
    (
        "env.no-control-addr",
        "exits 2 naming TESTBED_CONTROL_ADDR when it is not set (§1, §12)",
    ),
    (
        "env.no-node-index",
        "exits 2 naming TESTBED_NODE_INDEX when neither it nor JOB_COMPLETION_INDEX is set (§1)",
    ),
    (
        "control.unreachable",
        "exits 3 when the control channel cannot be opened (§12)",
    ),
    (
        "hello",
        "speaks first with hello: protocol 1, its index, its pid, its implementation name, an impl_version (§3)",
    ),
    (
        "state.starting",
        "sends state{starting} right after hello (§7)",
    ),
    (
        "command.before-welcome",
        "answers a command sent before the welcome with ack ok: false (§5)",
    ),
    (
        "listening",
        "after the welcome: listening{peer_id, listen_addrs} with dialable /ip4|ip6/…/tcp/PORT addresses without /p2p/, then state{listening} (§3)",
    ),
    (
        "control.unix",
        "works over a Unix socket control channel, unix:/path (§1)",
    ),
    (
        "messages.well-formed",
        "every message it sends is one line of JSON matching the contract: known type, exactly its fields, no nulls (§2, §3)",
    ),
    (
        "malformed.ignored",
        "ignores a line that is not JSON, an unknown message type and a released for an unknown barrier, and keeps serving (§2, §6)",
    ),
    (
        "command.unknown-op",
        "answers an unknown op and a command with missing fields with ack{id, ok: false, error} (§2)",
    ),
    ("report", "report: a snapshot, then ack ok (§5)"),
    (
        "connect.empty",
        "connect with no peers: ack ok at once, state connected (§5)",
    ),
    (
        "connect.failure",
        "a failed dial: ack ok: false, error naming `node <index> (<peer_id> at <addr>)`, info {connected, failed} (§5)",
    ),
    (
        "connect",
        "dials the Rust reference and its own kind: ack ok, info {connected: n, failed: 0} (§5)",
    ),
    (
        "subscribe.wait-mesh",
        "subscribe with wait_mesh: ack ok, info {mesh_ms, topics: {t: {mesh, subscribed}}}, states subscribed and ready (§5)",
    ),
    (
        "publish.no-peer",
        "publish to a topic nobody subscribes: ack ok: false after peer_timeout_ms, info {published: 0} (§5)",
    ),
    (
        "publish",
        "publish: ack ok, info {published: count}, state running (§5)",
    ),
    (
        "commands.concurrent",
        "answers a report while a publish is running (§5)",
    ),
    (
        "unsubscribe",
        "unsubscribe: ack ok, info {unsubscribed: 1} (§5)",
    ),
    (
        "snapshots.periodic",
        "sends snapshots every snapshot_interval_ms, counters consistent (§10)",
    ),
    (
        "states.forward",
        "state messages move forward only and match the result's timeline (§7)",
    ),
    (
        "finish",
        "finish: states draining and done, ack ok, the result last, then close and exit 0 promptly (§12)",
    ),
    (
        "abort",
        "abort: result with exit aborted and `aborted by the orchestrator: <reason>`, no ack, exit 0 (§12)",
    ),
    (
        "result.well-formed",
        "the result has exactly the contract's fields: none unknown, none missing, no nulls, integers as integers (§10)",
    ),
    (
        "result.consistent",
        "result fields agree with the run: index, peer id, exit and error, published 0..n in order, subscriptions, timeline, RSS, CPU (§10)",
    ),
    (
        "result.seen",
        "seen-sets: origins ascending, ranges sorted, disjoint, non-adjacent, inclusive; received equals their size; own messages ignored (§8, §10)",
    ),
    (
        "result.histograms",
        "latency: HDR V2 compressed base64 (1 µs to 1 h, 3 digits), one per origin group ascending, counts summing to received (§11)",
    ),
    (
        "interop.to-reference",
        "the Rust reference received every message it published: payload layout readable, exact seen-set and latency per origin (§9)",
    ),
    (
        "interop.from-reference",
        "it received every message of the Rust reference and of its own kind: exact seen-sets and latency per origin (§8, §9)",
    ),
    (
        "signal.sigterm",
        "SIGTERM: result with exit aborted and `stopped by SIGTERM`, exit 143 (§12)",
    ),
    (
        "welcome.wrong-protocol",
        "fails on a welcome with another protocol: result exit error with the error, exit 1 (§12)",
    ),
    (
        "welcome.wrong-index",
        "fails on a welcome for another index: result exit error with the error, exit 1 (§4, §12)",
    ),
    (
        "abort.before-welcome",
        "abort before the welcome: result with exit aborted and empty lists, exit 0 (§12)",
    ),
    (
        "channel.lost",
        "exits 3 without a result when the orchestrator closes the channel (§12)",
    ),
];

/// Checks made by the side processes (never skipped by the main session).
pub(super) const SIDE_CHECKS: &[&str] = &[
    "env.no-control-addr",
    "env.no-node-index",
    "control.unreachable",
    "control.unix",
    "signal.sigterm",
    "welcome.wrong-protocol",
    "welcome.wrong-index",
    "abort.before-welcome",
    "channel.lost",
];
