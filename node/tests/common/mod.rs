//! A minimal scripted orchestrator for driving real `pubsub-node` processes in tests.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::time::Duration;
use testbed_contract::plan::{GossipsubParams, Variant};
use testbed_contract::protocol::{Command, NodeConfig, NodeMsg, OrchMsg, PeerAddr, encode_line};
use testbed_contract::results::{NodeResult, NodeState};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, Command as Process};

/// Upper bound for a whole scenario, so a broken node fails the test instead of hanging it.
pub const SCENARIO_LIMIT: Duration = Duration::from_secs(120);

/// The run secret every test node gets in its environment, and must say in `hello`.
pub const SECRET: &str = "test-secret-0123456789";

/// The orchestrator's end of one node's control channel.
pub struct Conn {
    pub lines: Lines<BufReader<OwnedReadHalf>>,
    pub w: OwnedWriteHalf,
    /// Every message the node sent, in order.
    pub seen: Vec<NodeMsg>,
    pub next_id: u64,
}

impl Conn {
    pub async fn send(&mut self, msg: &OrchMsg) {
        self.w.write_all(&encode_line(msg)).await.unwrap();
    }

    pub async fn send_raw(&mut self, line: &str) {
        self.w.write_all(line.as_bytes()).await.unwrap();
        self.w.write_all(b"\n").await.unwrap();
    }

    pub async fn recv(&mut self) -> NodeMsg {
        let line = self
            .lines
            .next_line()
            .await
            .unwrap()
            .expect("node closed the control channel early");
        // deny_unknown_fields in the contract: this also checks the node's wire form.
        let msg: NodeMsg = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("node sent a line outside the contract: {e}: {line}"));
        self.seen.push(msg.clone());
        msg
    }

    /// Reads until `pick` returns something.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&NodeMsg) -> Option<T>) -> T {
        loop {
            let msg = self.recv().await;
            if let Some(t) = pick(&msg) {
                return t;
            }
        }
    }

    pub async fn ack_of(&mut self, id: u64) -> (bool, Option<String>, serde_json::Value) {
        self.until(|m| match m {
            NodeMsg::Ack {
                id: got,
                ok,
                error,
                info,
            } if *got == id => Some((*ok, error.clone(), info.clone())),
            _ => None,
        })
        .await
    }

    /// Sends a command and returns its ack's (ok, error, info).
    pub async fn command(&mut self, cmd: Command) -> (bool, Option<String>, serde_json::Value) {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&OrchMsg::Command { id, cmd }).await;
        self.ack_of(id).await
    }

    pub async fn ok(&mut self, cmd: Command) -> serde_json::Value {
        let what = format!("{cmd:?}");
        let (ok, error, info) = self.command(cmd).await;
        assert!(ok, "{what} failed: {error:?}");
        info
    }

    pub async fn result(&mut self) -> NodeResult {
        let result = self
            .until(|m| match m {
                NodeMsg::Result(r) => Some((**r).clone()),
                _ => None,
            })
            .await;
        // The result is the last message: the node closes the channel after it.
        assert!(self.lines.next_line().await.unwrap().is_none());
        result
    }

    pub fn states(&self) -> Vec<NodeState> {
        self.seen
            .iter()
            .filter_map(|m| match m {
                NodeMsg::State { state, .. } => Some(*state),
                _ => None,
            })
            .collect()
    }
}

pub struct Node {
    pub conn: Conn,
    pub child: Child,
    pub index: u32,
    pub peer_id: String,
    pub addr: String,
}

impl Node {
    pub fn peer(&self) -> PeerAddr {
        PeerAddr {
            index: self.index,
            peer_id: self.peer_id.clone(),
            addr: self.addr.clone(),
        }
    }
}

pub fn spawn(control: &str, index: u32) -> Child {
    Process::new(env!("CARGO_BIN_EXE_pubsub-node"))
        .env(testbed_contract::env::CONTROL_ADDR, control)
        .env(testbed_contract::env::NODE_INDEX, index.to_string())
        .env(testbed_contract::env::RUN_ID, "test")
        .env(testbed_contract::env::LISTEN_IP, "127.0.0.1")
        .env(testbed_contract::env::RUN_SECRET, SECRET)
        .env_remove(testbed_contract::env::JOB_COMPLETION_INDEX)
        .env("RUST_LOG", "warn")
        // Killed when the test ends, passing or failing.
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pubsub-node")
}

pub fn config(index: u32, variant: Variant) -> NodeConfig {
    NodeConfig {
        run_id: "test".into(),
        index,
        group: "g".into(),
        variant,
        gossipsub: GossipsubParams {
            // A short heartbeat keeps mesh waits short.
            heartbeat: Duration::from_millis(200),
            heartbeat_initial_delay: Duration::from_millis(50),
            ..GossipsubParams::default()
        },
        seed: 7,
        snapshot_interval_ms: 200,
        // Node i is in group 10 + i.
        origin_groups: vec![10, 11],
        tracing: None,
        node_metrics: false,
        security: Default::default(),
        report_deliveries: false,
    }
}

/// A control channel that has said hello, before welcome.
pub struct Hello {
    pub conn: Conn,
    pub index: u32,
}

/// Spawns `n` nodes and accepts their control channels, checking each `hello`.
pub async fn spawn_fleet(n: u32) -> (Vec<Hello>, Vec<Child>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control = format!("tcp://{}", listener.local_addr().unwrap());
    let children: Vec<Child> = (0..n).map(|i| spawn(&control, i)).collect();
    let mut hellos = Vec::new();
    for _ in 0..n {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, w) = stream.into_split();
        let mut conn = Conn {
            lines: BufReader::new(r).lines(),
            w,
            seen: Vec::new(),
            next_id: 1,
        };
        let index = match conn.recv().await {
            NodeMsg::Hello {
                protocol,
                index,
                implementation,
                secret,
                ..
            } => {
                assert_eq!(protocol, testbed_contract::PROTOCOL_VERSION);
                assert_eq!(implementation, "rust");
                assert!(secret.matches(SECRET), "hello carries the run secret");
                index
            }
            other => panic!("expected hello first, got {other:?}"),
        };
        hellos.push(Hello { conn, index });
    }
    hellos.sort_by_key(|h| h.index);
    (hellos, children)
}

/// Welcomes a node and waits until it listens.
pub async fn welcome(hello: Hello, child: Child, config: NodeConfig) -> Node {
    let Hello { mut conn, index } = hello;
    conn.send(&OrchMsg::Welcome {
        protocol: testbed_contract::PROTOCOL_VERSION,
        config: Box::new(config),
    })
    .await;
    let (peer_id, addrs) = conn
        .until(|m| match m {
            NodeMsg::Listening {
                peer_id,
                listen_addrs,
                ..
            } => Some((peer_id.clone(), listen_addrs.clone())),
            _ => None,
        })
        .await;
    assert!(addrs[0].starts_with("/ip4/127.0.0.1/tcp/"), "{addrs:?}");
    Node {
        conn,
        child,
        index,
        peer_id,
        addr: addrs[0].clone(),
    }
}

/// Starts `n` nodes of `variant` and takes them through hello, welcome and listening.
pub async fn start(n: u32, variant: Variant) -> Vec<Node> {
    start_with(n, |i| config(i, variant)).await
}

/// Starts `n` nodes, node `i` with the welcome config `config(i)`.
pub async fn start_with(n: u32, config: impl Fn(u32) -> NodeConfig) -> Vec<Node> {
    let (hellos, children) = spawn_fleet(n).await;
    let mut nodes = Vec::new();
    for (hello, child) in hellos.into_iter().zip(children) {
        let cfg = config(hello.index);
        nodes.push(welcome(hello, child, cfg).await);
    }
    nodes
}
