//! `orchestrator conformance --impl NAME`: drives one node implementation through the node
//! contract (docs/node-contract.md) with a scripted orchestrator — real processes, real
//! control channels (TCP and a Unix socket), real libp2p between two nodes under test and a
//! Rust reference node — and names every check it fails.
//!
//! The script:
//! 1. **Main session**: nodes 0 and 1 run the implementation under test, node 2 is the Rust
//!    reference. Each has its own control listener, so every line is attributed to exactly
//!    one process. Hello, a command before the welcome, welcome, listening, malformed input,
//!    unknown ops, report, connect (empty, failing, real), subscribe with `wait_mesh`, a
//!    publish nobody can receive, publishing by all three while a report runs, unsubscribe,
//!    finish (node 0 and the reference) and abort (node 1); then the results are checked
//!    field by field and against each other: seen-sets must be exact both ways and the
//!    latency histograms must count exactly the messages of each origin.
//! 2. **Side processes**, concurrently: missing environment, an unreachable control address,
//!    a Unix socket control channel ended by SIGTERM, welcomes with another protocol or index,
//!    an abort before the welcome, and the orchestrator closing the channel.
//!
//! Every check of [`CATALOGUE`] appears in the report, passed, failed (with what was wrong,
//! naming the node) or skipped (with the failure that kept it from running).

use crate::runner::program::{NodeProgram, Programs};
use crate::runner::{NodeLaunch, local::node_command};
use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;
use testbed_contract::histogram::{self, MAX_LATENCY_US, SIGFIG};
use testbed_contract::plan::{GossipsubParams, Implementation, Variant};
use testbed_contract::protocol::{Command, NodeConfig, NodeMsg, OrchMsg, PeerAddr, encode_line};
use testbed_contract::results::{ExitReason, NodeResult, NodeState};
use testbed_contract::{PROTOCOL_VERSION, env};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::Instant;

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

/// `orchestrator conformance`: exit 0 when every check passed, 1 when one did not, 4 when the
/// check could not run (e.g. the program is missing).
#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {
    /// The implementation to check: rust, go or js.
    #[arg(long = "impl", value_enum)]
    pub implementation: ImplArg,
    /// Go: the go-libp2p-pubsub version, as a plan's `impl_version` names it (its binary is
    /// interop/go/bin/pubsub-node-go-<version>).
    #[arg(long)]
    pub impl_version: Option<String>,
    /// Check this program instead of the implementation's own (e.g. a wrapper or a work in
    /// progress); arguments after it are passed to it.
    #[arg(long, num_args = 1.., value_name = "PROGRAM [ARGS]", allow_hyphen_values = true)]
    pub program: Option<Vec<String>>,
    /// The Rust node binary, also the reference node (default: pubsub-node beside this
    /// executable, or $PUBSUB_NODE_BIN).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// Folder holding the Go and JS nodes (default: interop).
    #[arg(long)]
    pub interop_dir: Option<PathBuf>,
    /// Write the node logs here (default: a temporary folder, removed when every check passed).
    #[arg(long, value_name = "DIR")]
    pub logs: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of the checklist.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ImplArg {
    Rust,
    Go,
    Js,
}

impl From<ImplArg> for Implementation {
    fn from(a: ImplArg) -> Self {
        match a {
            ImplArg::Rust => Implementation::Rust,
            ImplArg::Go => Implementation::Go,
            ImplArg::Js => Implementation::Js,
        }
    }
}

pub async fn cli(args: ConformanceArgs) -> Result<std::process::ExitCode> {
    let program = args.program.map(|mut v| {
        let path = PathBuf::from(v.remove(0));
        NodeProgram { path, args: v }
    });
    let opts = ConformanceOptions {
        implementation: args.implementation.into(),
        impl_version: args.impl_version,
        programs: Programs::discover(args.node_bin, args.interop_dir),
        program,
        keep_logs: args.logs.is_some(),
        log_dir: args.logs,
    };
    let report = run(&opts).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

/// What to check.
#[derive(Debug, Clone)]
pub struct ConformanceOptions {
    pub implementation: Implementation,
    /// Go: the go-libp2p-pubsub version (selects the binary as a plan's `impl_version` does).
    pub impl_version: Option<String>,
    /// Where the Rust reference node and the implementations' programs are.
    pub programs: Programs,
    /// Check this program instead of the implementation's own (a wrapper, a test double).
    pub program: Option<NodeProgram>,
    /// Node logs go here (default: a fresh folder in the temporary directory).
    pub log_dir: Option<PathBuf>,
    /// Keep the logs of a passing check (a failing one always keeps them).
    pub keep_logs: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    pub status: CheckStatus,
    /// What was wrong (fail), or why it did not run (skip).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    pub implementation: String,
    pub program: String,
    /// `hello.impl_version` of the first node under test.
    pub impl_version: Option<String>,
    pub reference: String,
    pub checks: Vec<CheckResult>,
    pub logs: PathBuf,
    pub duration_s: f64,
}

impl ConformanceReport {
    /// No check failed (skips count as failures: something kept them from running).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status == CheckStatus::Pass)
    }

    pub fn check(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    pub fn not_passed(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.status != CheckStatus::Pass)
    }

    /// The checklist as printed by `orchestrator conformance`.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "conformance of the {} node: {}{}",
            self.implementation,
            self.program,
            self.impl_version
                .as_ref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default()
        );
        let _ = writeln!(o, "reference: {}\n", self.reference);
        for c in &self.checks {
            let mark = match c.status {
                CheckStatus::Pass => "[ ok ]",
                CheckStatus::Fail => "[FAIL]",
                CheckStatus::Skip => "[skip]",
            };
            let _ = writeln!(o, "{mark} {:<24} {}", c.id, c.title);
            if let Some(d) = &c.detail {
                for line in d.lines() {
                    let _ = writeln!(o, "       {:<24} {line}", "");
                }
            }
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .count();
        let skipped = self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Skip)
            .count();
        let _ = writeln!(o);
        if self.passed() {
            let _ = writeln!(
                o,
                "PASSED: all {} checks ({:.1} s)",
                self.checks.len(),
                self.duration_s
            );
        } else {
            let names: Vec<&str> = self.not_passed().map(|c| c.id.as_str()).collect();
            let _ = writeln!(
                o,
                "FAILED: {failed} failed, {skipped} skipped of {} checks ({:.1} s): {}",
                self.checks.len(),
                self.duration_s,
                names.join(", ")
            );
            let _ = writeln!(o, "node logs: {}", self.logs.display());
        }
        o
    }
}

/// Results as they come in; several results for one id are merged (all must pass).
#[derive(Default)]
struct Checks {
    results: BTreeMap<&'static str, Vec<(CheckStatus, Option<String>)>>,
}

impl Checks {
    fn add(&mut self, id: &'static str, r: Result<(), String>) {
        debug_assert!(
            CATALOGUE.iter().any(|(c, _)| *c == id),
            "{id} is not in the catalogue"
        );
        let entry = match r {
            Ok(()) => (CheckStatus::Pass, None),
            Err(e) => (CheckStatus::Fail, Some(e)),
        };
        self.results.entry(id).or_default().push(entry);
    }

    fn skip(&mut self, id: &'static str, why: impl Into<String>) {
        self.results
            .entry(id)
            .or_default()
            .push((CheckStatus::Skip, Some(why.into())));
    }

    /// Records `r` for node `who`: errors are prefixed with the node's name.
    fn node(&mut self, id: &'static str, who: &str, r: Result<(), String>) {
        self.add(id, r.map_err(|e| format!("{who}: {e}")));
    }

    fn into_list(self) -> Vec<CheckResult> {
        CATALOGUE
            .iter()
            .map(|(id, title)| {
                let rs = self.results.get(id).cloned().unwrap_or_default();
                let status = if rs.is_empty() {
                    CheckStatus::Skip
                } else if rs.iter().any(|r| r.0 == CheckStatus::Fail) {
                    CheckStatus::Fail
                } else if rs.iter().any(|r| r.0 == CheckStatus::Skip) {
                    CheckStatus::Skip
                } else {
                    CheckStatus::Pass
                };
                let mut details: Vec<String> = rs
                    .iter()
                    .filter(|r| r.0 == status)
                    .filter_map(|r| r.1.clone())
                    .collect();
                details.dedup();
                let detail = match status {
                    CheckStatus::Pass => None,
                    _ if details.is_empty() => Some("not reached: an earlier step failed".into()),
                    _ => Some(details.join("\n")),
                };
                CheckResult {
                    id: id.to_string(),
                    title: title.to_string(),
                    status,
                    detail,
                }
            })
            .collect()
    }
}

/// Runs every check and returns the report (an `Err` only when the check itself cannot run,
/// e.g. the program does not exist).
pub async fn run(opts: &ConformanceOptions) -> Result<ConformanceReport> {
    let started = Instant::now();
    let program = match &opts.program {
        Some(p) => p.clone(),
        None => opts
            .programs
            .resolve(opts.implementation, opts.impl_version.as_deref())
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let reference = opts
        .programs
        .resolve(Implementation::Rust, None)
        .map_err(|e| anyhow::anyhow!("the Rust reference node: {e}"))?;
    let logs = match &opts.log_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "pubsub-testbed-conformance-{}-{}-{}",
            opts.implementation.as_str(),
            std::process::id(),
            chrono::Utc::now().format("%H%M%S%3f")
        )),
    };
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let ctx = Ctx {
        implementation: opts.implementation,
        impl_version: opts.impl_version.clone(),
        program: program.clone(),
        reference: reference.clone(),
        logs: logs.clone(),
    };

    let mut checks = Checks::default();
    let (main, side) = tokio::join!(main_session(&ctx), side_processes(&ctx));
    let said_version = main.1;
    for c in [main.0, side] {
        for (id, rs) in c.results {
            checks.results.entry(id).or_default().extend(rs);
        }
    }
    let report = ConformanceReport {
        implementation: opts.implementation.as_str().to_string(),
        program: program.to_string(),
        impl_version: said_version,
        reference: reference.to_string(),
        checks: checks.into_list(),
        logs: logs.clone(),
        duration_s: started.elapsed().as_secs_f64(),
    };
    if report.passed() && !opts.keep_logs && opts.log_dir.is_none() {
        let _ = std::fs::remove_dir_all(&logs);
    }
    Ok(report)
}

struct Ctx {
    implementation: Implementation,
    impl_version: Option<String>,
    program: NodeProgram,
    reference: NodeProgram,
    logs: PathBuf,
}

impl Ctx {
    fn who(&self, index: u32) -> String {
        format!("node {index} ({})", self.implementation.as_str())
    }
}

// ---------------------------------------------------------------------------------------
// One process and its control channel.

/// A line from a node, as received.
struct Line {
    at: Instant,
    raw: String,
    /// The line as JSON (None: not JSON).
    value: Option<Value>,
    /// The line as a contract message, or why it is not one.
    msg: Result<NodeMsg, String>,
}

impl Line {
    fn kind(&self) -> String {
        match &self.value {
            Some(v) => v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            None => "not JSON".into(),
        }
    }
}

enum Event {
    Opened(mpsc::UnboundedSender<Option<Vec<u8>>>),
    Line(Line),
    Closed,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

struct Proc {
    who: String,
    index: u32,
    child: Child,
    pid: u32,
    log: PathBuf,
    events: mpsc::UnboundedReceiver<Event>,
    tx: Option<mpsc::UnboundedSender<Option<Vec<u8>>>>,
    lines: Vec<Line>,
    cursor: usize,
    closed_at: Option<Instant>,
    exit: Option<(ExitStatus, Instant)>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.accept_task.abort();
        let _ = self.child.start_kill();
    }
}

/// How a process is started.
struct Spawn<'a> {
    program: &'a NodeProgram,
    index: u32,
    who: String,
    /// Listen on a Unix socket instead of TCP.
    unix: bool,
    /// Leave these variables out of the node's environment.
    without: &'a [&'a str],
    /// Use this control address instead of the listener's (nothing listens there).
    control_addr: Option<String>,
    logs: &'a Path,
    name: &'a str,
}

async fn spawn(s: Spawn<'_>) -> Result<Proc, String> {
    let (listener, addr) = if s.unix {
        let path = s.logs.join(format!("{}.sock", s.name));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path)
            .map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
        (Listener::Unix(l), format!("unix:{}", path.display()))
    } else {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot bind a control listener: {e}"))?;
        let a = l.local_addr().map_err(|e| e.to_string())?;
        (Listener::Tcp(l), format!("tcp://{a}"))
    };
    let control = s.control_addr.clone().unwrap_or(addr);
    let log = s.logs.join(format!("{}.log", s.name));
    let mut env = vec![
        (env::CONTROL_ADDR.to_string(), control),
        (env::NODE_INDEX.to_string(), s.index.to_string()),
        (env::RUN_ID.to_string(), "conformance".to_string()),
        (env::GROUP.to_string(), format!("g{}", s.index)),
        (env::LISTEN_IP.to_string(), "127.0.0.1".to_string()),
    ];
    env.retain(|(k, _)| !s.without.contains(&k.as_str()));
    let launch = NodeLaunch {
        index: s.index,
        group: format!("g{}", s.index),
        implementation: Implementation::Rust,
        program: s.program.clone(),
        env,
        log_path: log.clone(),
    };
    let mut cmd = node_command(&launch).map_err(|e| e.to_string())?;
    for var in s.without {
        cmd.env_remove(var);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", s.program))?;
    let pid = child.id().unwrap_or(0);
    let (ev_tx, events) = mpsc::unbounded_channel();
    let accept_task = tokio::spawn(async move {
        match listener {
            Listener::Tcp(l) => {
                if let Ok((stream, _)) = l.accept().await {
                    let _ = stream.set_nodelay(true);
                    let (r, w) = stream.into_split();
                    serve(r, w, ev_tx).await;
                }
            }
            Listener::Unix(l) => {
                if let Ok((stream, _)) = l.accept().await {
                    let (r, w) = stream.into_split();
                    serve(r, w, ev_tx).await;
                }
            }
        }
    });
    Ok(Proc {
        who: s.who,
        index: s.index,
        child,
        pid,
        log,
        events,
        tx: None,
        lines: Vec::new(),
        cursor: 0,
        closed_at: None,
        exit: None,
        accept_task,
    })
}

/// Reads lines from one connection into events; writes what the script sends (`None`:
/// shut the writing side down).
async fn serve<R, W>(reader: R, mut writer: W, events: mpsc::UnboundedSender<Event>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
    if events.send(Event::Opened(tx)).is_err() {
        return;
    }
    tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            match item {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(raw)) = lines.next_line().await {
        let raw = raw.trim_end_matches('\r').to_string();
        if raw.is_empty() {
            continue;
        }
        let value = serde_json::from_str::<Value>(&raw).ok();
        let msg = serde_json::from_str::<NodeMsg>(&raw).map_err(|e| e.to_string());
        let line = Line {
            at: Instant::now(),
            raw,
            value,
            msg,
        };
        if events.send(Event::Line(line)).is_err() {
            return;
        }
    }
    let _ = events.send(Event::Closed);
}

impl Proc {
    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Opened(tx) => self.tx = Some(tx),
            Event::Line(l) => self.lines.push(l),
            Event::Closed => self.closed_at = Some(Instant::now()),
        }
    }

    /// Takes whatever arrived without waiting.
    fn drain(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.on_event(ev);
        }
    }

    /// The next unread line (its position in `lines`), waiting until `until`.
    async fn next(&mut self, until: Instant) -> Option<usize> {
        loop {
            self.drain();
            if self.cursor < self.lines.len() {
                self.cursor += 1;
                return Some(self.cursor - 1);
            }
            if self.closed_at.is_some() {
                return None;
            }
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some(ev)) => self.on_event(ev),
                Ok(None) => {
                    self.closed_at.get_or_insert_with(Instant::now);
                }
                Err(_) => return None,
            }
        }
    }

    /// The first line (of all received so far, and those still to come until `within`
    /// passes) that matches `pred`; the error names what was received instead.
    async fn expect(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&Line) -> bool,
    ) -> Result<usize, String> {
        self.expect_since(0, within, what, pred).await
    }

    /// As [`Proc::expect`], among the lines from position `since` on.
    async fn expect_since(
        &mut self,
        since: usize,
        within: Duration,
        what: &str,
        pred: impl Fn(&Line) -> bool,
    ) -> Result<usize, String> {
        let until = Instant::now() + within;
        let mut scanned = since;
        loop {
            self.drain();
            while scanned < self.lines.len() {
                if pred(&self.lines[scanned]) {
                    return Ok(scanned);
                }
                scanned += 1;
            }
            if self.closed_at.is_some() {
                break;
            }
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some(ev)) => self.on_event(ev),
                Ok(None) => {
                    self.closed_at.get_or_insert_with(Instant::now);
                }
                Err(_) => break,
            }
        }
        let seen: Vec<String> = self.lines[since.min(self.lines.len())..]
            .iter()
            .map(Line::kind)
            .collect();
        let shown = if seen.len() > 12 {
            format!("…, {}", seen[seen.len() - 12..].join(", "))
        } else {
            seen.join(", ")
        };
        let end = if self.closed_at.is_some() {
            "the control channel closed".to_string()
        } else {
            format!("nothing within {} s", within.as_secs_f64())
        };
        Err(format!(
            "no {what}: {end}{}",
            if seen.is_empty() {
                String::new()
            } else {
                format!(" (received: {shown})")
            }
        ))
    }

    /// Waits for `ack{id}`; returns (line position, ok, error, info).
    async fn ack(
        &mut self,
        id: u64,
        within: Duration,
    ) -> Result<(usize, bool, Option<String>, Value), String> {
        let i = self
            .expect(
                within,
                &format!("ack for command {id}"),
                |l| matches!(&l.msg, Ok(NodeMsg::Ack { id: a, .. }) if *a == id),
            )
            .await?;
        match &self.lines[i].msg {
            Ok(NodeMsg::Ack {
                ok, error, info, ..
            }) => Ok((i, *ok, error.clone(), info.clone())),
            _ => unreachable!("matched an ack"),
        }
    }

    fn send(&self, msg: &OrchMsg) {
        self.send_raw(&encode_line(msg));
    }

    fn send_raw(&self, bytes: &[u8]) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Some(bytes.to_vec()));
        }
    }

    fn command(&self, id: u64, cmd: Command) {
        self.send(&OrchMsg::Command { id, cmd });
    }

    /// Shuts the orchestrator's side of the channel.
    fn close(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(None);
        }
    }

    /// Waits for the process to exit (at most `within`).
    async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        if let Some((s, _)) = self.exit {
            return Some(s);
        }
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(s)) => {
                self.exit = Some((s, Instant::now()));
                // Lines sent just before the exit.
                let until = Instant::now() + Duration::from_millis(300);
                while self.closed_at.is_none() {
                    match tokio::time::timeout_at(until, self.events.recv()).await {
                        Ok(Some(ev)) => self.on_event(ev),
                        _ => break,
                    }
                }
                Some(s)
            }
            _ => None,
        }
    }

    fn signal(&self, sig: i32) {
        if self.exit.is_none() && self.pid > 0 {
            // SAFETY: kill(2) of a child this process started and has not reaped.
            unsafe {
                libc::kill(self.pid as i32, sig);
            }
        }
    }

    /// Every parsed message so far (drains first).
    fn msgs(&mut self) -> Vec<(usize, &NodeMsg)> {
        self.drain();
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.msg.as_ref().ok().map(|m| (i, m)))
            .collect()
    }

    /// The result, as raw JSON and (if it parses) as the contract's type.
    fn result(&self) -> Option<(usize, &Line)> {
        self.lines.iter().enumerate().find(|(_, l)| {
            l.value
                .as_ref()
                .and_then(|v| v.get("type"))
                .and_then(Value::as_str)
                == Some("result")
        })
    }

    fn parsed_result(&self) -> Option<&NodeResult> {
        match &self.result()?.1.msg {
            Ok(NodeMsg::Result(r)) => Some(r),
            _ => None,
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn peer_id(&self) -> Option<String> {
        self.lines.iter().find_map(|l| match &l.msg {
            Ok(NodeMsg::Listening { peer_id, .. }) => Some(peer_id.clone()),
            _ => None,
        })
    }

    fn addr(&self) -> Option<String> {
        self.lines.iter().find_map(|l| match &l.msg {
            Ok(NodeMsg::Listening { listen_addrs, .. }) => listen_addrs.first().cloned(),
            _ => None,
        })
    }

    fn peer_addr(&self) -> Option<PeerAddr> {
        Some(PeerAddr {
            index: self.index,
            peer_id: self.peer_id()?,
            addr: self.addr()?,
        })
    }
}

fn exit_text(s: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match s {
        None => "still running".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "ended".into(),
        },
    }
}

fn welcome(index: u32, nodes: u32) -> OrchMsg {
    OrchMsg::Welcome {
        protocol: PROTOCOL_VERSION,
        config: Box::new(node_config(index, nodes)),
    }
}

fn node_config(index: u32, nodes: u32) -> NodeConfig {
    NodeConfig {
        run_id: "conformance".into(),
        index,
        group: format!("g{index}"),
        variant: Variant::Gossipsub,
        gossipsub: GossipsubParams::default(),
        seed: 0x5eed_0000_0000_0000 + u64::from(index),
        snapshot_interval_ms: SNAPSHOT_MS,
        // Every node its own origin group: latency histograms then count per origin.
        origin_groups: (0..nodes as u16).collect(),
        tracing: None,
        node_metrics: false,
        security: Default::default(),
        report_deliveries: false,
    }
}

const SNAPSHOT_MS: u64 = 300;
const TOPIC: &str = "conformance";
const COUNT: u32 = 40;
const RATE: f64 = 20.0;
const SIZE: u32 = 300;
/// Generous: a busy 2-core machine starting JS nodes takes seconds per step.
const STARTUP: Duration = Duration::from_secs(45);
const STEP: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// The main session.

async fn main_session(ctx: &Ctx) -> (Checks, Option<String>) {
    let mut c = Checks::default();
    let mut said = None;
    let r = main_script(ctx, &mut c, &mut said).await;
    if let Err(e) = r {
        // Everything not yet reached is skipped with the reason.
        for (id, _) in CATALOGUE {
            if !c.results.contains_key(id) && !SIDE_CHECKS.contains(id) {
                c.skip(id, format!("not reached: {e}"));
            }
        }
    }
    (c, said)
}

/// Checks made by the side processes (never skipped by the main session).
const SIDE_CHECKS: &[&str] = &[
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

async fn main_script(ctx: &Ctx, c: &mut Checks, said: &mut Option<String>) -> Result<(), String> {
    const N: u32 = 3;
    let mut procs = Vec::new();
    for i in 0..N {
        let reference = i == 2;
        let p = spawn(Spawn {
            program: if reference {
                &ctx.reference
            } else {
                &ctx.program
            },
            index: i,
            who: if reference {
                "node 2 (Rust reference)".into()
            } else {
                ctx.who(i)
            },
            unix: false,
            without: &[],
            control_addr: None,
            logs: &ctx.logs,
            name: &format!("main-node-{i}"),
        })
        .await?;
        procs.push(p);
    }
    let [mut a, mut b, mut r]: [Proc; 3] =
        procs.try_into().map_err(|_| "three nodes".to_string())?;
    let session_start = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;

    // Hello and starting.
    for p in [&mut a, &mut b, &mut r] {
        let is_ref = p.index == 2;
        let first = p.next(Instant::now() + STARTUP).await;
        let hello = check_hello(ctx, p, first, is_ref);
        if is_ref {
            hello.map_err(|e| format!("the Rust reference node did not start: {e}"))?;
            continue;
        }
        if p.index == 0
            && let Some(Ok(NodeMsg::Hello { impl_version, .. })) = first.map(|i| &p.lines[i].msg)
        {
            *said = Some(impl_version.clone());
        }
        let ok = hello.is_ok();
        c.node("hello", &p.who.clone(), hello);
        if !ok {
            return Err(format!("{} did not say hello", p.who));
        }
        let next = p.next(Instant::now() + STEP).await;
        let st = match next.map(|i| &p.lines[i].msg) {
            Some(Ok(NodeMsg::State {
                state: NodeState::Starting,
                ..
            })) => Ok(()),
            Some(_) => Err(format!(
                "the message after hello is `{}`, not state{{starting}}",
                p.lines[next.unwrap()].kind()
            )),
            None => Err("nothing after hello".into()),
        };
        c.node("state.starting", &p.who.clone(), st);
    }

    // A command before the welcome.
    a.command(1, Command::Report);
    let r1 = match a.ack(1, Duration::from_secs(5)).await {
        Ok((_, false, Some(_), _)) => Ok(()),
        Ok((_, false, None, _)) => Err("acked ok: false without an error text".into()),
        Ok((_, true, ..)) => Err("acked ok: true before the welcome".into()),
        Err(e) => Err(e),
    };
    c.node("command.before-welcome", &a.who.clone(), r1);

    // Welcome and listening.
    for p in [&mut a, &mut b, &mut r] {
        p.send(&welcome(p.index, N));
    }
    for p in [&mut a, &mut b, &mut r] {
        let res = check_listening(p).await;
        if p.index == 2 {
            res.map_err(|e| format!("the Rust reference node did not listen: {e}"))?;
            continue;
        }
        let ok = res.is_ok();
        c.node("listening", &p.who.clone(), res);
        if !ok {
            return Err(format!("{} did not listen", p.who));
        }
    }

    // Snapshots come unasked every snapshot_interval_ms: two before any command is sent.
    let mut unasked = Vec::new();
    for p in [&mut a, &mut b] {
        let is_snapshot = |l: &Line| matches!(l.msg, Ok(NodeMsg::Snapshot(_)));
        let from = p
            .lines
            .iter()
            .position(|l| l.kind() == "listening")
            .unwrap_or(0);
        let within = Duration::from_millis(SNAPSHOT_MS * 20);
        let r = match p
            .expect_since(from, within, "snapshot sent unasked", is_snapshot)
            .await
        {
            Ok(i) => p
                .expect_since(i + 1, within, "second snapshot sent unasked", is_snapshot)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        unasked.push(r.map_err(|e| format!("{e} (snapshot_interval_ms is {SNAPSHOT_MS})")));
    }
    let mut unasked = unasked.into_iter();

    // Malformed input, unknown ops, report.
    a.send_raw(b"this is not JSON\n");
    a.send_raw(b"{\"type\":\"no_such_message\",\"x\":1}\n");
    a.send_raw(b"\n");
    a.send(&OrchMsg::Released {
        barrier: "nobody-waits-for-this".into(),
        count: 1,
    });
    a.send_raw(b"{\"type\":\"command\",\"id\":50,\"cmd\":{\"op\":\"dance\"}}\n");
    a.send_raw(b"{\"type\":\"command\",\"id\":51,\"cmd\":{\"op\":\"publish\",\"topic\":\"t\"}}\n");
    let sent52 = Instant::now();
    a.command(52, Command::Report);
    let mut unknown = Vec::new();
    for id in [50u64, 51] {
        match a.ack(id, STEP).await {
            Ok((_, false, Some(_), _)) => {}
            Ok((_, false, None, _)) => {
                unknown.push(format!("command {id}: ok: false without an error text"))
            }
            Ok((_, true, ..)) => unknown.push(format!("command {id} acked ok: true")),
            Err(e) => unknown.push(e),
        }
    }
    c.node(
        "command.unknown-op",
        &a.who.clone(),
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(unknown.join("; "))
        },
    );
    let report = a.ack(52, STEP).await;
    let failed_state = a.msgs().iter().find_map(|(_, m)| match m {
        NodeMsg::State {
            state: NodeState::Failed,
            detail,
            ..
        } => Some(detail.clone().unwrap_or_default()),
        _ => None,
    });
    let malformed = match (
        &report,
        failed_state,
        a.exit.is_some() || a.closed_at.is_some(),
    ) {
        (_, Some(d), _) => Err(format!("entered `failed`: {d}")),
        (_, _, true) => Err("closed the channel or exited".into()),
        (Err(e), ..) => Err(format!("stopped answering: {e}")),
        _ => Ok(()),
    };
    c.node("malformed.ignored", &a.who.clone(), malformed);
    c.node("report", &a.who.clone(), check_report(&a, sent52, report));
    let sent53 = Instant::now();
    b.command(53, Command::Report);
    let rb = b.ack(53, STEP).await;
    c.node("report", &b.who.clone(), check_report(&b, sent53, rb));

    // Connect: empty, failing, real.
    b.command(60, Command::Connect { peers: vec![] });
    let empty = b.ack(60, Duration::from_secs(5)).await;
    let empty = match empty {
        Ok((_, true, ..)) => b
            .expect(Duration::from_secs(2), "state{connected}", |l| {
                matches!(
                    l.msg,
                    Ok(NodeMsg::State {
                        state: NodeState::Connected,
                        ..
                    })
                )
            })
            .await
            .map(|_| ()),
        Ok((_, false, e, _)) => Err(format!("ok: false: {}", e.unwrap_or_default())),
        Err(e) => Err(e),
    };
    c.node("connect.empty", &b.who.clone(), empty);

    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    let bogus = PeerAddr {
        index: 99,
        peer_id: b.peer_id().unwrap_or_default(),
        addr: format!("/ip4/127.0.0.1/tcp/{closed_port}"),
    };
    a.command(61, Command::Connect { peers: vec![bogus] });
    let fail = match a.ack(61, Duration::from_secs(45)).await {
        Ok((_, true, ..)) => Err("a dial to a closed port was acked ok: true".into()),
        Ok((_, false, err, info)) => {
            let mut probs = Vec::new();
            let e = err.unwrap_or_default();
            if !e.contains("node 99") {
                probs.push(format!("the error does not name `node 99`: {e:?}"));
            }
            if info.get("failed").and_then(Value::as_u64) != Some(1)
                || info.get("connected").and_then(Value::as_u64) != Some(0)
            {
                probs.push(format!("info is not {{connected: 0, failed: 1}}: {info}"));
            }
            if probs.is_empty() {
                Ok(())
            } else {
                Err(probs.join("; "))
            }
        }
        Err(e) => Err(e),
    };
    c.node("connect.failure", &a.who.clone(), fail);

    let (pa, pb, pr) = (a.peer_addr(), b.peer_addr(), r.peer_addr());
    let (Some(pa), Some(pb), Some(pr)) = (pa, pb, pr) else {
        return Err("a node has no listen address".into());
    };
    a.command(
        62,
        Command::Connect {
            peers: vec![pb.clone(), pr.clone()],
        },
    );
    let ca = check_connect(a.ack(62, Duration::from_secs(45)).await, 2);
    c.node("connect", &a.who.clone(), ca);
    b.command(
        63,
        Command::Connect {
            peers: vec![pa.clone(), pr.clone()],
        },
    );
    let cb = check_connect(b.ack(63, Duration::from_secs(45)).await, 2);
    c.node("connect", &b.who.clone(), cb);
    r.command(64, Command::Connect { peers: vec![] });
    r.ack(64, STEP)
        .await
        .map_err(|e| format!("the Rust reference: {e}"))?;

    // Subscribe, waiting for the mesh.
    for (p, id) in [(&a, 70u64), (&b, 71), (&r, 72)] {
        p.command(
            id,
            Command::Subscribe {
                topics: vec![TOPIC.into()],
                wait_mesh: true,
                mesh_timeout_ms: 30_000,
            },
        );
    }
    for (p, id) in [(&mut a, 70u64), (&mut b, 71)] {
        let res = check_subscribe(p, id).await;
        c.node("subscribe.wait-mesh", &p.who.clone(), res);
    }
    match r.ack(72, Duration::from_secs(40)).await {
        Ok((_, true, ..)) => {}
        Ok((_, false, e, _)) => {
            return Err(format!(
                "the Rust reference found no mesh: {}",
                e.unwrap_or_default()
            ));
        }
        Err(e) => return Err(format!("the Rust reference: {e}")),
    }

    // A publish nobody can receive.
    a.command(
        80,
        Command::Publish {
            topic: "nobody-listens-here".into(),
            count: 3,
            rate: None,
            size: SIZE,
            peer_timeout_ms: 500,
        },
    );
    let t80 = Instant::now();
    let np = match a.ack(80, STEP).await {
        Ok((_, true, ..)) => Err("acked ok: true".into()),
        Ok((_, false, err, info)) => {
            let mut probs = Vec::new();
            if info.get("published").and_then(Value::as_u64) != Some(0) {
                probs.push(format!("info is not {{published: 0}}: {info}"));
            }
            if err.is_none() {
                probs.push("no error text".into());
            }
            if t80.elapsed() < Duration::from_millis(400) {
                probs.push(format!(
                    "gave up after {} ms, before peer_timeout_ms (500)",
                    t80.elapsed().as_millis()
                ));
            }
            if probs.is_empty() {
                Ok(())
            } else {
                Err(probs.join("; "))
            }
        }
        Err(e) => Err(e),
    };
    c.node("publish.no-peer", &a.who.clone(), np);

    // Everyone publishes; a report while node 0 publishes.
    let publish = Command::Publish {
        topic: TOPIC.into(),
        count: COUNT,
        rate: Some(RATE),
        size: SIZE,
        peer_timeout_ms: 10_000,
    };
    for (p, id) in [(&a, 90u64), (&b, 91), (&r, 92)] {
        p.command(id, publish.clone());
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    a.command(93, Command::Report);
    let within = Duration::from_secs_f64(f64::from(COUNT) / RATE) + Duration::from_secs(30);
    let rep = a.ack(93, within).await;
    let pub_a = a.ack(90, within).await;
    let conc = match (&rep, &pub_a) {
        (Ok((ri, true, ..)), Ok((pi, ..))) if ri < pi => Ok(()),
        (Ok((_, true, ..)), Ok(_)) => {
            Err("the report was answered only after the publish finished".into())
        }
        (Ok((_, false, e, _)), _) => Err(format!(
            "the report failed: {}",
            e.clone().unwrap_or_default()
        )),
        (Err(e), _) => Err(format!("the report: {e}")),
        (_, Err(e)) => Err(format!("the publish: {e}")),
    };
    c.node("commands.concurrent", &a.who.clone(), conc);
    let pa_res = check_publish(&a, pub_a);
    c.node("publish", &a.who.clone(), pa_res);
    let pub_b = b.ack(91, within).await;
    let pb_res = check_publish(&b, pub_b);
    c.node("publish", &b.who.clone(), pb_res);
    match r.ack(92, within).await {
        Ok((_, true, ..)) => {}
        Ok((_, false, e, _)) => {
            return Err(format!(
                "the Rust reference could not publish: {}",
                e.unwrap_or_default()
            ));
        }
        Err(e) => return Err(format!("the Rust reference: {e}")),
    }

    // Settle: until every node counted the 2 × COUNT messages of the others (or 20 s).
    let settle_until = Instant::now() + Duration::from_secs(20);
    let mut id = 100u64;
    loop {
        let mut all = true;
        for p in [&mut a, &mut b, &mut r] {
            id += 1;
            p.command(id, Command::Report);
            let _ = p.ack(id, Duration::from_secs(5)).await;
            let got = p.msgs().iter().rev().find_map(|(_, m)| match m {
                NodeMsg::Snapshot(s) => Some(s.received),
                _ => None,
            });
            all &= got.unwrap_or(0) >= 2 * u64::from(COUNT);
        }
        if all || Instant::now() >= settle_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Unsubscribe node 1.
    b.command(
        120,
        Command::Unsubscribe {
            topics: vec![TOPIC.into()],
        },
    );
    let un = match b.ack(120, STEP).await {
        Ok((_, true, _, info)) if info.get("unsubscribed").and_then(Value::as_u64) == Some(1) => {
            Ok(())
        }
        Ok((_, true, _, info)) => Err(format!("info is not {{unsubscribed: 1}}: {info}")),
        Ok((_, false, e, _)) => Err(format!("ok: false: {}", e.unwrap_or_default())),
        Err(e) => Err(e),
    };
    c.node("unsubscribe", &b.who.clone(), un);

    // Finish node 0 and the reference, abort node 1.
    a.command(130, Command::Finish);
    r.command(131, Command::Finish);
    b.send(&OrchMsg::Abort {
        reason: "the conformance check ends here".into(),
    });
    let fa = check_finish(&mut a, 130).await;
    c.node("finish", &a.who.clone(), fa);
    let ab = check_abort(
        &mut b,
        "aborted by the orchestrator: the conformance check ends here",
        0,
    )
    .await;
    c.node("abort", &b.who.clone(), ab);
    let _ = r.wait_exit(Duration::from_secs(10)).await;
    r.drain();
    let session_end = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;

    // Snapshots, states, results.
    for p in [&mut a, &mut b] {
        let m = check_messages(p);
        c.node("messages.well-formed", &p.who.clone(), m);
        let sn = check_snapshots(p, unasked.next().unwrap_or(Ok(())));
        c.node("snapshots.periodic", &p.who.clone(), sn);
        let st = check_states(p);
        c.node("states.forward", &p.who.clone(), st);
    }
    let window = (session_start, session_end);
    let expect_exit = [
        (&a, ExitReason::Finished, true),
        (&b, ExitReason::Aborted, false),
    ];
    for (p, exit, subscribed_at_end) in expect_exit {
        match p.result() {
            None => {
                for id in [
                    "result.well-formed",
                    "result.consistent",
                    "result.seen",
                    "result.histograms",
                ] {
                    c.skip(id, format!("{}: no result", p.who));
                }
            }
            Some((_, line)) => {
                c.node("result.well-formed", &p.who, check_well_formed(line));
                match p.parsed_result() {
                    Some(res) => {
                        c.node(
                            "result.consistent",
                            &p.who,
                            check_consistent(p, res, exit, subscribed_at_end, window),
                        );
                        c.node("result.seen", &p.who, check_seen(p.index, res));
                        c.node("result.histograms", &p.who, check_histograms(res));
                    }
                    _ => {
                        for id in ["result.consistent", "result.seen", "result.histograms"] {
                            c.skip(id, format!("{}: the result could not be read", p.who));
                        }
                    }
                }
            }
        }
    }

    // Interop, both ways, exact.
    // What each node published: from its result, else from its publish ack.
    let published: HashMap<u32, u64> = [&a, &b, &r]
        .iter()
        .filter_map(|p| {
            let n = match p.parsed_result() {
                Some(res) => res.published.len() as u64,
                None => p.lines.iter().find_map(|l| match &l.msg {
                    Ok(NodeMsg::Ack { id, info, .. }) if (90..=92).contains(id) => {
                        info.get("published").and_then(Value::as_u64)
                    }
                    _ => None,
                })?,
            };
            Some((p.index, n))
        })
        .collect();
    match r.parsed_result() {
        None => c.skip(
            "interop.to-reference",
            "the Rust reference sent no readable result",
        ),
        Some(rr) => {
            for p in [&a, &b] {
                let res = exact_from(rr, p.index, published.get(&p.index).copied());
                c.node(
                    "interop.to-reference",
                    &p.who,
                    res.map_err(|e| format!("at the reference: {e}")),
                );
            }
        }
    }
    for p in [&a, &b] {
        let Some(res) = p.parsed_result() else {
            c.skip(
                "interop.from-reference",
                format!("{}: no readable result", p.who),
            );
            continue;
        };
        let other = if p.index == 0 { 1 } else { 0 };
        let mut probs = Vec::new();
        for origin in [2u32, other] {
            if let Err(e) = exact_from(res, origin, published.get(&origin).copied()) {
                probs.push(e);
            }
        }
        c.node(
            "interop.from-reference",
            &p.who,
            if probs.is_empty() {
                Ok(())
            } else {
                Err(probs.join("; "))
            },
        );
    }
    Ok(())
}

fn saw_state(p: &Proc, state: NodeState) -> bool {
    p.lines
        .iter()
        .any(|l| matches!(&l.msg, Ok(NodeMsg::State { state: s, .. }) if *s == state))
}

/// Every line but the result (checked on its own) is a contract message without nulls.
fn check_messages(p: &mut Proc) -> Result<(), String> {
    p.drain();
    let mut probs = Vec::new();
    for (n, l) in p.lines.iter().enumerate() {
        if l.kind() == "result" {
            continue;
        }
        if let Err(e) = &l.msg {
            probs.push(format!(
                "message {} (`{}`): {e}: {}",
                n + 1,
                l.kind(),
                excerpt(&l.raw)
            ));
        } else if let Some(v) = &l.value {
            let mut nulls = Vec::new();
            find_nulls(v, &l.kind(), &mut nulls);
            if !nulls.is_empty() {
                probs.push(format!(
                    "message {} (`{}`): null instead of an omitted field at {}",
                    n + 1,
                    l.kind(),
                    nulls.join(", ")
                ));
            }
        }
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

/// Why a process's result cannot be used (none, or not the contract's).
fn result_problem(p: &Proc) -> String {
    match p.result() {
        None => "no result".into(),
        Some((_, l)) => format!(
            "the result does not match the contract: {}",
            l.msg.as_ref().err().cloned().unwrap_or_default()
        ),
    }
}

fn check_hello(ctx: &Ctx, p: &Proc, first: Option<usize>, reference: bool) -> Result<(), String> {
    let Some(i) = first else {
        return Err(format!(
            "no message within {} s ({}, log {})",
            STARTUP.as_secs(),
            if p.closed_at.is_some() {
                "the channel closed"
            } else {
                "nothing arrived"
            },
            p.log.display()
        ));
    };
    let l = &p.lines[i];
    let Ok(NodeMsg::Hello {
        protocol,
        index,
        pid,
        implementation,
        impl_version,
        ..
    }) = &l.msg
    else {
        return Err(match &l.msg {
            Err(e) if l.kind() == "hello" => format!(
                "hello does not match the contract: {e}: {}",
                excerpt(&l.raw)
            ),
            _ => format!("the first message is `{}`, not hello", l.kind()),
        });
    };
    let mut probs = Vec::new();
    if *protocol != PROTOCOL_VERSION {
        probs.push(format!("protocol {protocol}, not {PROTOCOL_VERSION}"));
    }
    if *index != p.index {
        probs.push(format!(
            "index {index}, but TESTBED_NODE_INDEX is {}",
            p.index
        ));
    }
    if *pid != p.pid {
        probs.push(format!("pid {pid}, but the process is {}", p.pid));
    }
    let want = if reference {
        "rust"
    } else {
        ctx.implementation.as_str()
    };
    if implementation != want {
        probs.push(format!("implementation `{implementation}`, not `{want}`"));
    }
    if impl_version.trim().is_empty() {
        probs.push("empty impl_version".into());
    } else if !reference
        && let Some(v) = ctx
            .impl_version
            .as_deref()
            .filter(|v| v.starts_with('v') && !v.contains('@'))
        && !impl_version.contains(v)
    {
        probs.push(format!(
            "impl_version `{impl_version}` does not name the requested version {v}"
        ));
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

async fn check_listening(p: &mut Proc) -> Result<(), String> {
    let i = p
        .expect(STARTUP, "listening", |l| l.kind() == "listening")
        .await?;
    let (peer_id, addrs) = match &p.lines[i].msg {
        Ok(NodeMsg::Listening {
            peer_id,
            listen_addrs,
            ..
        }) => (peer_id.clone(), listen_addrs.clone()),
        Ok(_) => unreachable!("kind is listening"),
        Err(e) => {
            return Err(format!(
                "listening does not match the contract: {e}: {}",
                excerpt(&p.lines[i].raw)
            ));
        }
    };
    let mut probs = Vec::new();
    if let Err(e) = check_peer_id(&peer_id) {
        probs.push(e);
    }
    if addrs.is_empty() {
        probs.push("listen_addrs is empty".into());
    }
    for a in &addrs {
        match parse_tcp_multiaddr(a) {
            Ok(sock) => {
                if a == &addrs[0] {
                    let dial = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::net::TcpStream::connect(sock),
                    )
                    .await;
                    if !matches!(dial, Ok(Ok(_))) {
                        probs.push(format!("{a} is not dialable over TCP"));
                    }
                }
            }
            Err(e) => probs.push(e),
        }
    }
    // state{listening} follows.
    let st = p
        .expect_since(i + 1, STEP, "state{listening} after listening", |l| {
            matches!(
                l.msg,
                Ok(NodeMsg::State {
                    state: NodeState::Listening,
                    ..
                })
            )
        })
        .await;
    if let Err(e) = st {
        probs.push(e);
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

/// A libp2p peer id: base58btc of an identity (Ed25519 keys) or SHA-256 multihash.
fn check_peer_id(s: &str) -> Result<(), String> {
    let bytes = base58_decode(s).ok_or_else(|| format!("peer id `{s}` is not base58"))?;
    let ok = match bytes.as_slice() {
        [0x00, len, rest @ ..] => *len as usize == rest.len(),
        [0x12, 0x20, rest @ ..] => rest.len() == 32,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "peer id `{s}` is not a libp2p peer id (identity or SHA-256 multihash)"
        ))
    }
}

fn base58_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    if s.is_empty() {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    for ch in s.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == ch)? as u32;
        for b in out.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&b| b == b'1').count();
    let mut v = vec![0u8; zeros];
    v.extend(out);
    Some(v)
}

/// `/ip4/A/tcp/P` or `/ip6/A/tcp/P`, nothing after.
fn parse_tcp_multiaddr(a: &str) -> Result<std::net::SocketAddr, String> {
    let parts: Vec<&str> = a.split('/').collect();
    if a.contains("/p2p/") {
        return Err(format!("{a} has a /p2p/ suffix"));
    }
    match parts.as_slice() {
        ["", proto @ ("ip4" | "ip6"), ip, "tcp", port] => {
            let ip: std::net::IpAddr = ip
                .parse()
                .map_err(|_| format!("{a}: `{ip}` is not an IP address"))?;
            if (*proto == "ip4") != ip.is_ipv4() {
                return Err(format!("{a}: /{proto} with the wrong address family"));
            }
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{a}: `{port}` is not a port"))?;
            if port == 0 {
                return Err(format!(
                    "{a}: port 0 (the OS-assigned port must be resolved)"
                ));
            }
            Ok(std::net::SocketAddr::new(ip, port))
        }
        _ => Err(format!("{a} is not /ip4|ip6/<addr>/tcp/<port>")),
    }
}

type AckResult = Result<(usize, bool, Option<String>, Value), String>;

/// A report sent at `sent`: a snapshot arrives after that and before the ack.
fn check_report(p: &Proc, sent: Instant, ack: AckResult) -> Result<(), String> {
    let (i, ok, err, _) = ack?;
    if !ok {
        return Err(format!(
            "report acked ok: false: {}",
            err.unwrap_or_default()
        ));
    }
    let snapshot = p.lines[..i]
        .iter()
        .any(|l| l.at >= sent && matches!(l.msg, Ok(NodeMsg::Snapshot(_))));
    if snapshot {
        Ok(())
    } else {
        Err("no snapshot between the report command and its ack".into())
    }
}

fn check_connect(ack: AckResult, n: u64) -> Result<(), String> {
    let (_, ok, err, info) = ack?;
    if !ok {
        return Err(format!("ok: false: {}", err.unwrap_or_default()));
    }
    let connected = info.get("connected").and_then(Value::as_u64);
    let failed = info.get("failed").and_then(Value::as_u64);
    if connected != Some(n) || failed != Some(0) {
        return Err(format!("info is not {{connected: {n}, failed: 0}}: {info}"));
    }
    Ok(())
}

async fn check_subscribe(p: &mut Proc, id: u64) -> Result<(), String> {
    let (_, ok, err, info) = p.ack(id, Duration::from_secs(40)).await?;
    if !ok {
        return Err(format!("no mesh: {}", err.unwrap_or_default()));
    }
    let mut probs = Vec::new();
    if !info.get("mesh_ms").is_some_and(Value::is_number) {
        probs.push(format!("info has no numeric mesh_ms: {info}"));
    }
    let t = info.get("topics").and_then(|t| t.get(TOPIC));
    let mesh = t.and_then(|t| t.get("mesh")).and_then(Value::as_u64);
    let subscribed = t.and_then(|t| t.get("subscribed")).and_then(Value::as_u64);
    match (mesh, subscribed) {
        (Some(m), Some(s)) if m >= 1 && s >= 1 => {}
        _ => probs.push(format!(
            "info.topics.{TOPIC} is not {{mesh ≥ 1, subscribed ≥ 1}}: {info}"
        )),
    }
    for st in [NodeState::Subscribed, NodeState::Ready] {
        if !saw_state(p, st) {
            probs.push(format!("no state{{{}}}", st.as_str()));
        }
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

fn check_publish(p: &Proc, ack: AckResult) -> Result<(), String> {
    let (_, ok, err, info) = ack?;
    if !ok {
        return Err(format!("ok: false: {}", err.unwrap_or_default()));
    }
    let mut probs = Vec::new();
    if info.get("published").and_then(Value::as_u64) != Some(u64::from(COUNT)) {
        probs.push(format!("info is not {{published: {COUNT}, …}}: {info}"));
    }
    if !saw_state(p, NodeState::Running) {
        probs.push("no state{running}".into());
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

async fn check_finish(p: &mut Proc, id: u64) -> Result<(), String> {
    let exit = p.wait_exit(Duration::from_secs(15)).await;
    p.drain();
    let mut probs = Vec::new();
    let result = p.result().map(|(i, l)| (i, l.at));
    let ack = p
        .lines
        .iter()
        .position(|l| matches!(&l.msg, Ok(NodeMsg::Ack { id: a, .. }) if *a == id));
    match ack {
        None => probs.push("no ack for finish".into()),
        Some(i) => {
            if let Ok(NodeMsg::Ack {
                ok: false, error, ..
            }) = &p.lines[i].msg
            {
                probs.push(format!(
                    "finish acked ok: false: {}",
                    error.clone().unwrap_or_default()
                ));
            }
            if result.is_some_and(|(r, _)| r < i) {
                probs.push("the finish ack came after the result".into());
            }
        }
    }
    check_end_states(p, &mut probs);
    check_result_last(p, result, exit, 0, &mut probs);
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

async fn check_abort(p: &mut Proc, want_error: &str, want_code: i32) -> Result<(), String> {
    let exit = p.wait_exit(Duration::from_secs(15)).await;
    p.drain();
    let mut probs = Vec::new();
    let result = p.result().map(|(i, l)| (i, l.at));
    // (A result that cannot be read is `result.well-formed`'s failure.)
    if let Some(r) = p.parsed_result() {
        if r.exit != ExitReason::Aborted {
            probs.push(format!("result exit is {:?}, not aborted", r.exit));
        }
        if r.error.as_deref() != Some(want_error) {
            probs.push(format!("result error is {:?}, not {want_error:?}", r.error));
        }
    }
    check_end_states(p, &mut probs);
    check_result_last(p, result, exit, want_code, &mut probs);
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

fn check_end_states(p: &Proc, probs: &mut Vec<String>) {
    for st in [NodeState::Draining, NodeState::Done] {
        if !saw_state(p, st) {
            probs.push(format!("no state{{{}}}", st.as_str()));
        }
    }
}

fn check_result_last(
    p: &Proc,
    result: Option<(usize, Instant)>,
    exit: Option<ExitStatus>,
    code: i32,
    probs: &mut Vec<String>,
) {
    match result {
        None => probs.push("no result".into()),
        Some((i, at)) => {
            if i + 1 != p.lines.len() {
                let after: Vec<String> = p.lines[i + 1..].iter().map(Line::kind).collect();
                probs.push(format!("messages after the result: {}", after.join(", ")));
            }
            if let Some((_, exited)) = p.exit
                // The contract says 2 s; a loaded machine gets some slack.
                && exited.saturating_duration_since(at) > Duration::from_secs(5)
            {
                probs.push(format!(
                    "exited {:.1} s after the result (the contract: within 2 s)",
                    exited.saturating_duration_since(at).as_secs_f64()
                ));
            }
        }
    }
    if p.closed_at.is_none() {
        probs.push("the control channel was not closed".into());
    }
    match exit {
        Some(s) if s.code() == Some(code) => {}
        s => probs.push(format!("{}, not exit code {code}", exit_text(s))),
    }
}

/// `unasked`: whether two snapshots came unasked after the welcome (checked at the time).
fn check_snapshots(p: &mut Proc, unasked: Result<(), String>) -> Result<(), String> {
    let welcome_at = p
        .lines
        .iter()
        .find(|l| l.kind() == "listening")
        .map(|l| l.at);
    let end_at = p
        .lines
        .iter()
        .find(|l| {
            matches!(
                l.msg,
                Ok(NodeMsg::State {
                    state: NodeState::Draining,
                    ..
                })
            )
        })
        .map(|l| l.at);
    let snaps: Vec<(Instant, testbed_contract::results::Snapshot)> = p
        .lines
        .iter()
        .filter_map(|l| match &l.msg {
            Ok(NodeMsg::Snapshot(s)) => Some((l.at, s.clone())),
            _ => None,
        })
        .collect();
    if welcome_at.is_none() || end_at.is_none() {
        return Err("the session did not reach its end".into());
    }
    let mut probs = Vec::new();
    if let Err(e) = unasked {
        probs.push(e);
    }
    // In the order they were taken. Two may be taken concurrently (a periodic one and one for
    // a report), and an implementation may read its counters a moment before the clock: only
    // snapshots at least 100 ms apart must have counters that did not go backwards.
    let mut snaps = snaps;
    snaps.sort_by_key(|s| s.1.at_ns);
    if snaps.iter().any(|s| s.1.rss_bytes == 0) {
        probs.push("a snapshot with rss_bytes 0".into());
    }
    'outer: for (i, (_, s)) in snaps.iter().enumerate() {
        for (_, q) in &snaps[..i] {
            if q.at_ns + 100_000_000 <= s.at_ns
                && (s.published < q.published || s.received < q.received || s.cpu_ns < q.cpu_ns)
            {
                probs.push(format!(
                    "snapshot counters went backwards: at_ns {} published {} received {} cpu_ns {}, then at_ns {} published {} received {} cpu_ns {}",
                    q.at_ns, q.published, q.received, q.cpu_ns, s.at_ns, s.published, s.received, s.cpu_ns
                ));
                break 'outer;
            }
        }
    }
    let prev = snaps.last().map(|s| &s.1);
    if let Some(last) = prev {
        if last.cpu_ns == 0 {
            probs.push("cpu_ns is 0".into());
        }
        if last.published != u64::from(COUNT) {
            probs.push(format!(
                "the last snapshot says published {}, not {COUNT}",
                last.published
            ));
        }
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

fn check_states(p: &mut Proc) -> Result<(), String> {
    let sent: Vec<(NodeState, u64)> = p
        .msgs()
        .iter()
        .filter_map(|(_, m)| match m {
            NodeMsg::State { state, at_ns, .. } => Some((*state, *at_ns)),
            _ => None,
        })
        .collect();
    let mut probs = Vec::new();
    for w in sent.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.0 <= a.0 && b.0 != NodeState::Failed {
            probs.push(format!("state {} after {}", b.0.as_str(), a.0.as_str()));
        }
        if b.1 < a.1 {
            probs.push(format!(
                "state {} has an earlier at_ns than {}",
                b.0.as_str(),
                a.0.as_str()
            ));
        }
    }
    if let Some(r) = p.parsed_result() {
        let timeline: Vec<(NodeState, u64)> =
            r.timeline.iter().map(|s| (s.state, s.at_ns)).collect();
        if timeline != sent {
            let show = |v: &[(NodeState, u64)]| {
                v.iter()
                    .map(|s| s.0.as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            };
            probs.push(format!(
                "the result's timeline ({}) differs from the states sent ({}){}",
                show(&timeline),
                show(&sent),
                if show(&timeline) == show(&sent) {
                    " in timestamps"
                } else {
                    ""
                }
            ));
        }
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

/// The result line against the contract: strict parse, no nulls, integers as integers.
fn check_well_formed(line: &Line) -> Result<(), String> {
    let mut probs = Vec::new();
    if let Err(e) = &line.msg {
        probs.push(format!("does not match the contract's result: {e}"));
    }
    if let Some(v) = &line.value {
        let mut nulls = Vec::new();
        find_nulls(v, "result", &mut nulls);
        if !nulls.is_empty() {
            probs.push(format!(
                "null instead of an omitted field at {}",
                nulls.join(", ")
            ));
        }
        for list in ["latency", "published", "seen", "subscriptions", "timeline"] {
            if !v.get(list).is_some_and(Value::is_array) {
                probs.push(format!(
                    "`{list}` is not a list (empty lists are sent as [])"
                ));
            }
        }
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

fn find_nulls(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Null => out.push(at.to_string()),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                find_nulls(x, &format!("{at}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                find_nulls(x, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

fn check_consistent(
    p: &Proc,
    r: &NodeResult,
    exit: ExitReason,
    subscribed_at_end: bool,
    window: (u64, u64),
) -> Result<(), String> {
    let mut probs = Vec::new();
    if r.index != p.index {
        probs.push(format!("index {}, not {}", r.index, p.index));
    }
    if Some(&r.peer_id) != p.peer_id().as_ref() {
        probs.push(format!(
            "peer_id {} differs from the one it listened with",
            r.peer_id
        ));
    }
    if r.exit != exit {
        probs.push(format!("exit {:?}, not {exit:?}", r.exit));
    }
    if exit == ExitReason::Finished && r.error.is_some() {
        probs.push(format!("an error for a finished node: {:?}", r.error));
    }
    let (from, to) = window;
    let seqs: Vec<u64> = r.published.iter().map(|x| x.seq).collect();
    if seqs != (0..u64::from(COUNT)).collect::<Vec<_>>() {
        probs.push(format!(
            "published seqs are {seqs:?}, not 0..{COUNT} in order"
        ));
    }
    if r.published.iter().any(|x| x.topic != TOPIC) {
        probs.push(format!("a published message not on topic {TOPIC}"));
    }
    if r.published.windows(2).any(|w| w[1].at_ns < w[0].at_ns) {
        probs.push("published at_ns go backwards".into());
    }
    if r.published.iter().any(|x| x.at_ns < from || x.at_ns > to) {
        probs.push("a published at_ns outside the session (not ns since the Unix epoch?)".into());
    }
    if let Some(first) = r.published.first().zip(r.published.last()) {
        let span_s = (first.1.at_ns.saturating_sub(first.0.at_ns)) as f64 / 1e9;
        let nominal = f64::from(COUNT - 1) / RATE;
        if span_s < nominal * 0.8 {
            probs.push(format!("published {COUNT} messages in {span_s:.2} s, faster than rate {RATE}/s allows ({nominal:.2} s)"));
        }
    }
    match r.subscriptions.as_slice() {
        [s] if s.topic == TOPIC => {
            if s.from_ns < from || s.from_ns > to {
                probs.push("the subscription's from_ns is outside the session".into());
            }
            match (subscribed_at_end, s.to_ns) {
                (true, Some(_)) => {
                    probs.push("the subscription has a to_ns though it never unsubscribed".into())
                }
                (false, None) => {
                    probs.push("the subscription has no to_ns after unsubscribe".into())
                }
                (false, Some(t)) if t < s.from_ns => {
                    probs.push("the subscription ends before it starts".into())
                }
                _ => {}
            }
        }
        other => probs.push(format!(
            "subscriptions are {other:?}, not one span on {TOPIC}"
        )),
    }
    if r.peak_rss_bytes == 0 || r.final_rss_bytes == 0 {
        probs.push("peak_rss_bytes or final_rss_bytes is 0".into());
    }
    if r.peak_rss_bytes < r.final_rss_bytes {
        probs.push(format!(
            "peak_rss_bytes {} < final_rss_bytes {}",
            r.peak_rss_bytes, r.final_rss_bytes
        ));
    }
    if r.cpu_ns == 0 {
        probs.push("cpu_ns is 0".into());
    }
    if r.timeline.last().map(|s| s.state) != Some(NodeState::Done) {
        probs.push("the timeline does not end with done".into());
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

fn check_seen(own: u32, r: &NodeResult) -> Result<(), String> {
    let mut probs = Vec::new();
    let mut total = 0u64;
    for w in r.seen.windows(2) {
        if w[1].origin <= w[0].origin {
            probs.push(format!(
                "origins not ascending ({} after {})",
                w[1].origin, w[0].origin
            ));
        }
    }
    for s in &r.seen {
        if s.origin == own {
            probs.push("its own messages are in its seen-set".into());
        }
        if s.ranges.is_empty() {
            probs.push(format!("origin {} has no ranges (leave it out)", s.origin));
        }
        for rg in &s.ranges {
            if rg[0] > rg[1] {
                probs.push(format!("origin {}: range {rg:?} is reversed", s.origin));
            }
            total += rg[1].saturating_sub(rg[0]) + 1;
        }
        for w in s.ranges.windows(2) {
            if w[1][0] <= w[0][1].saturating_add(1) {
                probs.push(format!(
                    "origin {}: ranges {:?} and {:?} overlap, touch or are out of order",
                    s.origin, w[0], w[1]
                ));
            }
        }
    }
    if total != r.received {
        probs.push(format!(
            "received is {}, the seen-sets hold {total}",
            r.received
        ));
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

fn check_histograms(r: &NodeResult) -> Result<(), String> {
    let mut probs = Vec::new();
    let mut count = 0u64;
    for w in r.latency.windows(2) {
        if w[1].origin_group <= w[0].origin_group {
            probs.push(format!(
                "origin groups not ascending ({} after {})",
                w[1].origin_group, w[0].origin_group
            ));
        }
    }
    for l in &r.latency {
        let g = l.origin_group;
        if base64_prefix(&l.hdr).is_none_or(|b| b[..4] != [0x1c, 0x84, 0x93, 0x14]) {
            probs.push(format!(
                "group {g}: not the V2 compressed encoding in base64 (cookie 0x1c849314)"
            ));
        }
        match histogram::decode(&l.hdr) {
            Err(e) => probs.push(format!("group {g}: {e}")),
            Ok(h) => {
                if h.low() != 1 || h.high() != MAX_LATENCY_US || h.sigfig() != SIGFIG {
                    probs.push(format!(
                        "group {g}: bounds {}..{} with {} digits, not 1..{MAX_LATENCY_US} with {SIGFIG}",
                        h.low(),
                        h.high(),
                        h.sigfig()
                    ));
                }
                if h.is_empty() {
                    probs.push(format!("group {g}: an empty histogram (leave it out)"));
                }
                count += h.len();
            }
        }
    }
    if probs.is_empty() && count != r.received {
        probs.push(format!(
            "the histograms hold {count} samples, received is {}",
            r.received
        ));
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

/// `r` saw exactly seqs 0..n of `origin` and its histogram of `origin`'s group holds n
/// plausible samples.
fn exact_from(r: &NodeResult, origin: u32, published: Option<u64>) -> Result<(), String> {
    let Some(n) = published else {
        return Err(format!(
            "node {origin} neither acked its publish nor sent a result, so its messages cannot be counted"
        ));
    };
    let ranges = r
        .seen
        .iter()
        .find(|s| s.origin == origin)
        .map(|s| s.ranges.clone())
        .unwrap_or_default();
    let want = if n == 0 { vec![] } else { vec![[0, n - 1]] };
    if ranges != want {
        return Err(format!(
            "saw {ranges:?} of node {origin}'s messages, not {want:?}"
        ));
    }
    let group = origin as u16;
    let h = r
        .latency
        .iter()
        .find(|l| l.origin_group == group)
        .map(|l| histogram::decode(&l.hdr));
    match h {
        None if n > 0 => Err(format!("no latency histogram for origin group {group}")),
        None => Ok(()),
        Some(Err(e)) => Err(format!("origin group {group}: {e}")),
        Some(Ok(h)) if h.len() != n => Err(format!(
            "origin group {group}: {} latency samples for {n} messages",
            h.len()
        )),
        Some(Ok(h)) if h.max() > 60_000_000 => Err(format!(
            "origin group {group}: a latency of {} s (wrong publish time or clock?)",
            h.max() / 1_000_000
        )),
        Some(Ok(_)) => Ok(()),
    }
}

/// The first 6 bytes of standard base64 text (its first 8 characters).
fn base64_prefix(s: &str) -> Option<[u8; 6]> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let chars = s.as_bytes().get(..8)?;
    let mut bits: u64 = 0;
    for &ch in chars {
        bits = (bits << 6) | ALPHABET.iter().position(|&a| a == ch)? as u64;
    }
    let b = bits.to_be_bytes();
    Some([b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn excerpt(s: &str) -> String {
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

// ---------------------------------------------------------------------------------------
// Side processes: one scenario each, all at once.

async fn side_processes(ctx: &Ctx) -> Checks {
    let (a, b, c, d, e, f, g, h) = tokio::join!(
        side_env(ctx, "env.no-control-addr", env::CONTROL_ADDR, 10),
        side_env(ctx, "env.no-node-index", env::NODE_INDEX, 11),
        side_unreachable(ctx),
        side_sigterm(ctx),
        side_bad_welcome(ctx, "welcome.wrong-protocol", 14, true),
        side_bad_welcome(ctx, "welcome.wrong-index", 15, false),
        side_abort_before_welcome(ctx),
        side_channel_lost(ctx),
    );
    let mut checks = Checks::default();
    for part in [a, b, c, d, e, f, g, h] {
        for (id, rs) in part.results {
            checks.results.entry(id).or_default().extend(rs);
        }
    }
    checks
}

async fn side_spawn(
    ctx: &Ctx,
    index: u32,
    name: &str,
    unix: bool,
    without: &[&str],
    control_addr: Option<String>,
) -> Result<Proc, String> {
    spawn(Spawn {
        program: &ctx.program,
        index,
        who: ctx.who(index),
        unix,
        without,
        control_addr,
        logs: &ctx.logs,
        name,
    })
    .await
}

async fn side_env(ctx: &Ctx, id: &'static str, var: &'static str, index: u32) -> Checks {
    let mut c = Checks::default();
    let without: &[&str] = if var == env::NODE_INDEX {
        &[env::NODE_INDEX, env::JOB_COMPLETION_INDEX]
    } else {
        &[var]
    };
    let r = async {
        let mut p = side_spawn(ctx, index, id, false, without, None).await?;
        let exit = p.wait_exit(Duration::from_secs(30)).await;
        let mut probs = Vec::new();
        if exit.and_then(|s| s.code()) != Some(2) {
            probs.push(format!("{}, not exit code 2", exit_text(exit)));
        }
        let stderr = p.stderr_text();
        if !stderr.contains(var) {
            probs.push(format!(
                "stderr does not name {var}: {:?}",
                excerpt(stderr.trim())
            ));
        }
        if probs.is_empty() {
            Ok(())
        } else {
            Err(probs.join("; "))
        }
    }
    .await;
    c.add(id, r);
    c
}

async fn side_unreachable(ctx: &Ctx) -> Checks {
    let mut c = Checks::default();
    let r = async {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            l.local_addr().map_err(|e| e.to_string())?.port()
        };
        let mut p = side_spawn(
            ctx,
            12,
            "control-unreachable",
            false,
            &[],
            Some(format!("tcp://127.0.0.1:{port}")),
        )
        .await?;
        let exit = p.wait_exit(Duration::from_secs(40)).await;
        if exit.and_then(|s| s.code()) == Some(3) {
            Ok(())
        } else {
            Err(format!("{}, not exit code 3", exit_text(exit)))
        }
    }
    .await;
    c.add("control.unreachable", r);
    c
}

/// Hello, welcome, listening over a Unix socket; then SIGTERM.
async fn side_sigterm(ctx: &Ctx) -> Checks {
    let mut c = Checks::default();
    let mut p = match side_spawn(ctx, 13, "sigterm-unix", true, &[], None).await {
        Ok(p) => p,
        Err(e) => {
            c.add("control.unix", Err(e));
            c.skip("signal.sigterm", "the node could not be started");
            return c;
        }
    };
    let up = async {
        p.expect(STARTUP, "hello over the Unix socket", |l| {
            l.kind() == "hello"
        })
        .await?;
        p.send(&welcome(13, 14));
        p.expect(STARTUP, "listening", |l| l.kind() == "listening")
            .await?;
        p.expect(STEP, "state{listening}", |l| {
            matches!(
                l.msg,
                Ok(NodeMsg::State {
                    state: NodeState::Listening,
                    ..
                })
            )
        })
        .await
        .map(|_| ())
    }
    .await;
    let ok = up.is_ok();
    c.node("control.unix", &p.who.clone(), up);
    if !ok {
        c.skip(
            "signal.sigterm",
            "the node did not come up over the Unix socket",
        );
        return c;
    }
    p.signal(libc::SIGTERM);
    let r = check_abort(&mut p, "stopped by SIGTERM", 143).await;
    c.node("signal.sigterm", &p.who.clone(), r);
    c
}

async fn side_bad_welcome(ctx: &Ctx, id: &'static str, index: u32, wrong_protocol: bool) -> Checks {
    let mut c = Checks::default();
    let r = async {
        let mut p = side_spawn(ctx, index, id, false, &[], None).await?;
        p.expect(STARTUP, "hello", |l| l.kind() == "hello").await?;
        let msg = if wrong_protocol {
            OrchMsg::Welcome {
                protocol: PROTOCOL_VERSION + 1,
                config: Box::new(node_config(index, index + 1)),
            }
        } else {
            OrchMsg::Welcome {
                protocol: PROTOCOL_VERSION,
                config: Box::new(node_config(index + 1, index + 2)),
            }
        };
        p.send(&msg);
        let exit = p.wait_exit(Duration::from_secs(20)).await;
        p.drain();
        let mut probs = Vec::new();
        match p.parsed_result() {
            Some(r)
                if r.exit == ExitReason::Error
                    && r.error.as_ref().is_some_and(|e| !e.is_empty()) => {}
            Some(r) => probs.push(format!(
                "result exit {:?} with error {:?}, not exit error with the error",
                r.exit, r.error
            )),
            None => probs.push(result_problem(&p)),
        }
        if !saw_state(&p, NodeState::Failed) {
            probs.push("no state{failed}".into());
        }
        if exit.and_then(|s| s.code()) != Some(1) {
            probs.push(format!("{}, not exit code 1", exit_text(exit)));
        }
        if probs.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", p.who, probs.join("; ")))
        }
    }
    .await;
    c.add(id, r);
    c
}

async fn side_abort_before_welcome(ctx: &Ctx) -> Checks {
    let mut c = Checks::default();
    let r = async {
        let mut p = side_spawn(ctx, 16, "abort-before-welcome", false, &[], None).await?;
        p.expect(STARTUP, "hello", |l| l.kind() == "hello").await?;
        p.send(&OrchMsg::Abort {
            reason: "not needed".into(),
        });
        let exit = p.wait_exit(Duration::from_secs(20)).await;
        p.drain();
        let mut probs = Vec::new();
        match p.parsed_result() {
            Some(r) => {
                if r.exit != ExitReason::Aborted {
                    probs.push(format!("result exit {:?}, not aborted", r.exit));
                }
                if r.error.as_deref() != Some("aborted by the orchestrator: not needed") {
                    probs.push(format!(
                        "result error {:?}, not \"aborted by the orchestrator: not needed\"",
                        r.error
                    ));
                }
                if !(r.latency.is_empty()
                    && r.published.is_empty()
                    && r.seen.is_empty()
                    && r.subscriptions.is_empty())
                {
                    probs.push("latency, published, seen or subscriptions not empty".into());
                }
            }
            None => probs.push(result_problem(&p)),
        }
        if exit.and_then(|s| s.code()) != Some(0) {
            probs.push(format!("{}, not exit code 0", exit_text(exit)));
        }
        if probs.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", p.who, probs.join("; ")))
        }
    }
    .await;
    c.add("abort.before-welcome", r);
    c
}

async fn side_channel_lost(ctx: &Ctx) -> Checks {
    let mut c = Checks::default();
    let r = async {
        let mut p = side_spawn(ctx, 17, "channel-lost", false, &[], None).await?;
        p.expect(STARTUP, "hello", |l| l.kind() == "hello").await?;
        p.send(&welcome(17, 18));
        p.expect(STARTUP, "listening", |l| l.kind() == "listening")
            .await?;
        p.close();
        let exit = p.wait_exit(Duration::from_secs(15)).await;
        p.drain();
        let mut probs = Vec::new();
        if exit.and_then(|s| s.code()) != Some(3) {
            probs.push(format!("{}, not exit code 3", exit_text(exit)));
        }
        if p.result().is_some() {
            probs.push("sent a result to a closed channel".into());
        }
        if probs.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", p.who, probs.join("; ")))
        }
    }
    .await;
    c.add("channel.lost", r);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_peer_ids() {
        assert!(check_peer_id("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA").is_ok());
        assert!(check_peer_id("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N").is_ok());
        assert!(check_peer_id("not-a-peer-id").is_err());
        assert!(check_peer_id("12D3KooW").is_err());
    }

    #[test]
    fn histogram_cookie() {
        let mut h = histogram::new_latency_histogram();
        h.record(5).unwrap();
        let text = histogram::encode(&h).unwrap();
        assert_eq!(base64_prefix(&text).unwrap()[..4], [0x1c, 0x84, 0x93, 0x14]);
        assert!(base64_prefix("!!").is_none());
    }

    #[test]
    fn multiaddrs() {
        assert!(parse_tcp_multiaddr("/ip4/127.0.0.1/tcp/4001").is_ok());
        assert!(parse_tcp_multiaddr("/ip6/::1/tcp/4001").is_ok());
        assert!(parse_tcp_multiaddr("/ip4/127.0.0.1/tcp/0").is_err());
        assert!(
            parse_tcp_multiaddr(
                "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
            )
            .is_err()
        );
        assert!(parse_tcp_multiaddr("/ip4/::1/tcp/1").is_err());
        assert!(parse_tcp_multiaddr("/ip4/127.0.0.1/udp/1/quic-v1").is_err());
    }

    #[test]
    fn every_check_is_reported_even_when_not_reached() {
        let mut c = Checks::default();
        c.add("hello", Ok(()));
        c.add(
            "hello",
            Err("node 1 (go): pid 3, but the process is 4".into()),
        );
        c.skip("finish", "no result");
        let list = c.into_list();
        assert_eq!(list.len(), CATALOGUE.len());
        let hello = list.iter().find(|x| x.id == "hello").unwrap();
        assert_eq!(hello.status, CheckStatus::Fail);
        assert!(hello.detail.as_deref().unwrap().contains("node 1"));
        let finish = list.iter().find(|x| x.id == "finish").unwrap();
        assert_eq!(finish.status, CheckStatus::Skip);
        let never = list.iter().find(|x| x.id == "channel.lost").unwrap();
        assert_eq!(never.status, CheckStatus::Skip);
    }
}
