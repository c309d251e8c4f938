//! One node process under test and its control channel: each process gets a control
//! listener of its own (TCP, or a Unix socket), so every line is attributed to exactly one
//! process, and the script reads lines as they come — malformed ones included, which the
//! run's control server would refuse before anyone saw them.

use crate::runner::program::NodeProgram;
use crate::runner::{NodeLaunch, local::node_command};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;
use testbed_contract::plan::{GossipsubParams, Implementation, Variant};
use testbed_contract::protocol::{Command, NodeConfig, NodeMsg, OrchMsg, PeerAddr, encode_line};
use testbed_contract::results::NodeResult;
use testbed_contract::{PROTOCOL_VERSION, env};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A line from a node, as received.
pub(super) struct Line {
    pub(super) at: Instant,
    pub(super) raw: String,
    /// The line as JSON (None: not JSON).
    pub(super) value: Option<Value>,
    /// The line as a contract message, or why it is not one.
    pub(super) msg: Result<NodeMsg, String>,
}

impl Line {
    pub(super) fn kind(&self) -> String {
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

pub(super) enum Event {
    Opened(mpsc::UnboundedSender<Option<Vec<u8>>>),
    Line(Line),
    Closed,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

pub(super) struct Proc {
    pub(super) who: String,
    pub(super) index: u32,
    pub(super) child: Child,
    pub(super) pid: u32,
    pub(super) log: PathBuf,
    pub(super) events: mpsc::UnboundedReceiver<Event>,
    pub(super) tx: Option<mpsc::UnboundedSender<Option<Vec<u8>>>>,
    pub(super) lines: Vec<Line>,
    pub(super) cursor: usize,
    pub(super) closed_at: Option<Instant>,
    pub(super) exit: Option<(ExitStatus, Instant)>,
    pub(super) accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.accept_task.abort();
        let _ = self.child.start_kill();
    }
}

/// How a process is started.
pub(super) struct Spawn<'a> {
    pub(super) program: &'a NodeProgram,
    pub(super) index: u32,
    pub(super) who: String,
    /// Listen on a Unix socket instead of TCP.
    pub(super) unix: bool,
    /// Leave these variables out of the node's environment.
    pub(super) without: &'a [&'a str],
    /// Use this control address instead of the listener's (nothing listens there).
    pub(super) control_addr: Option<String>,
    pub(super) logs: &'a Path,
    pub(super) name: &'a str,
}

pub(super) async fn spawn(s: Spawn<'_>) -> Result<Proc, String> {
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
    pub(super) fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Opened(tx) => self.tx = Some(tx),
            Event::Line(l) => self.lines.push(l),
            Event::Closed => self.closed_at = Some(Instant::now()),
        }
    }

    /// Takes whatever arrived without waiting.
    pub(super) fn drain(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.on_event(ev);
        }
    }

    /// The next unread line (its position in `lines`), waiting until `until`.
    pub(super) async fn next(&mut self, until: Instant) -> Option<usize> {
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
    pub(super) async fn expect(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&Line) -> bool,
    ) -> Result<usize, String> {
        self.expect_since(0, within, what, pred).await
    }

    /// As [`Proc::expect`], among the lines from position `since` on.
    pub(super) async fn expect_since(
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
    pub(super) async fn ack(
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

    pub(super) fn send(&self, msg: &OrchMsg) {
        self.send_raw(&encode_line(msg));
    }

    pub(super) fn send_raw(&self, bytes: &[u8]) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Some(bytes.to_vec()));
        }
    }

    pub(super) fn command(&self, id: u64, cmd: Command) {
        self.send(&OrchMsg::Command { id, cmd });
    }

    /// Shuts the orchestrator's side of the channel.
    pub(super) fn close(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(None);
        }
    }

    /// Waits for the process to exit (at most `within`).
    pub(super) async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
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

    pub(super) fn signal(&self, sig: i32) {
        if self.exit.is_none() && self.pid > 0 {
            // SAFETY: kill(2) of a child this process started and has not reaped.
            unsafe {
                libc::kill(self.pid as i32, sig);
            }
        }
    }

    /// Every parsed message so far (drains first).
    pub(super) fn msgs(&mut self) -> Vec<(usize, &NodeMsg)> {
        self.drain();
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.msg.as_ref().ok().map(|m| (i, m)))
            .collect()
    }

    /// The result, as raw JSON and (if it parses) as the contract's type.
    pub(super) fn result(&self) -> Option<(usize, &Line)> {
        self.lines.iter().enumerate().find(|(_, l)| {
            l.value
                .as_ref()
                .and_then(|v| v.get("type"))
                .and_then(Value::as_str)
                == Some("result")
        })
    }

    pub(super) fn parsed_result(&self) -> Option<&NodeResult> {
        match &self.result()?.1.msg {
            Ok(NodeMsg::Result(r)) => Some(r),
            _ => None,
        }
    }

    pub(super) fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(super) fn peer_id(&self) -> Option<String> {
        self.lines.iter().find_map(|l| match &l.msg {
            Ok(NodeMsg::Listening { peer_id, .. }) => Some(peer_id.clone()),
            _ => None,
        })
    }

    pub(super) fn addr(&self) -> Option<String> {
        self.lines.iter().find_map(|l| match &l.msg {
            Ok(NodeMsg::Listening { listen_addrs, .. }) => listen_addrs.first().cloned(),
            _ => None,
        })
    }

    pub(super) fn peer_addr(&self) -> Option<PeerAddr> {
        Some(PeerAddr {
            index: self.index,
            peer_id: self.peer_id()?,
            addr: self.addr()?,
        })
    }
}

pub(super) fn exit_text(s: Option<ExitStatus>) -> String {
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

pub(super) fn welcome(index: u32, nodes: u32) -> OrchMsg {
    OrchMsg::Welcome {
        protocol: PROTOCOL_VERSION,
        config: Box::new(node_config(index, nodes)),
    }
}

pub(super) fn node_config(index: u32, nodes: u32) -> NodeConfig {
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

pub(super) const SNAPSHOT_MS: u64 = 300;
pub(super) const TOPIC: &str = "conformance";
pub(super) const COUNT: u32 = 40;
pub(super) const RATE: f64 = 20.0;
pub(super) const SIZE: u32 = 300;
/// Generous: a busy 2-core machine starting JS nodes takes seconds per step.
pub(super) const STARTUP: Duration = Duration::from_secs(45);
pub(super) const STEP: Duration = Duration::from_secs(15);

pub(super) fn excerpt(s: &str) -> String {
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
