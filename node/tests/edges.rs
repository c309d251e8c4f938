//! How a node ends and fails: abort, signals, a vanished orchestrator, bad parameters,
//! commands it cannot carry out.

mod common;

use common::{Node, SCENARIO_LIMIT, config, spawn_fleet, start, welcome};
use testbed_contract::plan::Variant;
use testbed_contract::protocol::{Command, NodeConfig, NodeMsg, OrchMsg, PeerAddr};
use testbed_contract::results::{ExitReason, NodeState};

async fn one(variant: Variant) -> Node {
    start(1, variant).await.pop().unwrap()
}

async fn exit_code(node: &mut Node) -> Option<i32> {
    node.child.wait().await.unwrap().code()
}

async fn limited(f: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(SCENARIO_LIMIT, f)
        .await
        .expect("the scenario finishes");
}

#[tokio::test]
async fn abort_sends_an_aborted_result_and_exits_0() {
    limited(async {
        let mut n = one(Variant::Gossipsub).await;
        n.conn
            .send(&OrchMsg::Abort {
                reason: "run timed out".into(),
            })
            .await;
        let r = n.conn.result().await;
        assert_eq!(r.exit, ExitReason::Aborted);
        assert!(r.error.unwrap().contains("run timed out"));
        let states: Vec<_> = r.timeline.iter().map(|c| c.state).collect();
        assert_eq!(
            states,
            vec![
                NodeState::Starting,
                NodeState::Listening,
                NodeState::Draining,
                NodeState::Done
            ]
        );
        assert_eq!(exit_code(&mut n).await, Some(0));
    })
    .await;
}

#[tokio::test]
async fn sigterm_sends_an_aborted_result() {
    limited(async {
        let mut n = one(Variant::Floodsub).await;
        let pid = n.child.id().unwrap() as i32;
        // SAFETY: signalling our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let r = n.conn.result().await;
        assert_eq!(r.exit, ExitReason::Aborted);
        assert!(r.error.unwrap().contains("SIGTERM"));
        assert_eq!(exit_code(&mut n).await, Some(143));
    })
    .await;
}

#[tokio::test]
async fn a_vanished_orchestrator_ends_the_node_with_an_error_code() {
    limited(async {
        let n = one(Variant::Gossipsub).await;
        let Node {
            conn, mut child, ..
        } = n;
        drop(conn);
        let code = child.wait().await.unwrap().code();
        assert_eq!(code, Some(3));
    })
    .await;
}

#[tokio::test]
async fn invalid_gossipsub_parameters_fail_the_node() {
    limited(async {
        let (mut hellos, mut children) = spawn_fleet(1).await;
        let mut hello = hellos.pop().unwrap();
        let mut cfg = config(0, Variant::Gossipsub);
        cfg.gossipsub.mesh_n_low = 9; // above mesh_n = 6
        hello
            .conn
            .send(&OrchMsg::Welcome {
                protocol: testbed_contract::PROTOCOL_VERSION,
                config: Box::new(cfg),
            })
            .await;
        let r = hello.conn.result().await;
        assert_eq!(r.exit, ExitReason::Error);
        assert!(
            r.error.as_deref().unwrap().contains("mesh_n_low (9)"),
            "{r:?}"
        );
        assert_eq!(r.timeline.last().unwrap().state, NodeState::Failed);
        assert!(hello.conn.states().contains(&NodeState::Failed));
        let code = children.pop().unwrap().wait().await.unwrap().code();
        assert_eq!(code, Some(1));
    })
    .await;
}

/// Sends a bad welcome and checks the node fails with `error` and exit code 1.
async fn refuses_welcome(change: impl FnOnce(&mut u32, &mut NodeConfig), expect: &str) {
    let (mut hellos, mut children) = spawn_fleet(1).await;
    let mut hello = hellos.pop().unwrap();
    let mut cfg = config(0, Variant::Gossipsub);
    let mut protocol = testbed_contract::PROTOCOL_VERSION;
    change(&mut protocol, &mut cfg);
    hello
        .conn
        .send(&OrchMsg::Welcome {
            protocol,
            config: Box::new(cfg),
        })
        .await;
    let r = hello.conn.result().await;
    assert_eq!(r.exit, ExitReason::Error);
    assert!(r.error.as_deref().unwrap().contains(expect), "{r:?}");
    assert_eq!(r.timeline.last().unwrap().state, NodeState::Failed);
    let code = children.pop().unwrap().wait().await.unwrap().code();
    assert_eq!(code, Some(1));
}

#[tokio::test]
async fn a_welcome_for_another_node_or_protocol_fails_the_node() {
    limited(async {
        refuses_welcome(|_, cfg| cfg.index = 5, "the welcome is for node 5").await;
        refuses_welcome(|protocol, _| *protocol = 99, "control protocol 99").await;
    })
    .await;
}

#[tokio::test]
async fn commands_that_cannot_be_done_are_refused_not_dropped() {
    limited(async {
        let (mut hellos, mut children) = spawn_fleet(1).await;
        let hello = hellos.pop().unwrap();
        let mut n = welcome(
            hello,
            children.pop().unwrap(),
            config(0, Variant::Gossipsub),
        )
        .await;

        // An unknown command still gets an answer.
        n.conn
            .send_raw(r#"{"type":"command","id":77,"cmd":{"op":"dance"}}"#)
            .await;
        let (ok, error, _) = n.conn.ack_of(77).await;
        assert!(!ok);
        assert!(error.unwrap().contains("unknown command"));

        // Nobody to publish to.
        let (ok, error, info) = n
            .conn
            .command(Command::Publish {
                topic: "t".into(),
                count: 3,
                rate: None,
                size: 100,
                peer_timeout_ms: 100,
            })
            .await;
        assert!(!ok);
        assert!(error.unwrap().contains("no peer subscribed"));
        assert_eq!(info["published"], 0);

        // Too large for the router.
        let (ok, error, _) = n
            .conn
            .command(Command::Publish {
                topic: "t".into(),
                count: 1,
                rate: None,
                size: 2 << 20,
                peer_timeout_ms: 100,
            })
            .await;
        assert!(!ok);
        assert!(error.unwrap().contains("exceeds"));

        // Nobody listens there: reported after the retries, naming the node.
        let (ok, error, info) = n
            .conn
            .command(Command::Connect {
                peers: vec![PeerAddr {
                    index: 1,
                    // Some other node's id; nothing listens on port 1.
                    peer_id: "12D3KooWN1BK8ze3KYRLJr3xxWAVBfHbbqv2pHyufHZyXsDb9eeF".into(),
                    addr: "/ip4/127.0.0.1/tcp/1".into(),
                }],
            })
            .await;
        assert!(!ok);
        let error = error.unwrap();
        assert!(error.contains("node 1"), "{error}");
        assert_eq!(info["failed"], 1);

        // A subscription nobody shares does not wait for a mesh, and is recorded.
        let info = n
            .conn
            .ok(Command::Subscribe {
                topics: vec!["lonely".into()],
                wait_mesh: true,
                mesh_timeout_ms: 10_000,
            })
            .await;
        assert_eq!(info["topics"]["lonely"]["subscribed"], 0);
        // ... but the node went ahead without a mesh, and says so.
        assert_eq!(info["meshed"], false, "{info}");
        assert!(info["mesh_ms"].is_null(), "{info}");
        assert_eq!(info["topics"]["lonely"]["target"], 0, "{info}");
        let ready = n.conn.seen.iter().find_map(|m| match m {
            NodeMsg::State {
                state: NodeState::Ready,
                detail,
                ..
            } => Some(detail.clone()),
            _ => None,
        });
        let detail = ready.expect("ready").expect("a detail");
        assert!(
            detail.contains("without a mesh") && detail.contains("lonely"),
            "{detail}"
        );
        n.conn
            .ok(Command::Unsubscribe {
                topics: vec!["lonely".into()],
            })
            .await;

        let id = n.conn.next_id;
        n.conn
            .send(&OrchMsg::Command {
                id,
                cmd: Command::Finish,
            })
            .await;
        let r = n.conn.result().await;
        assert_eq!(r.exit, ExitReason::Finished);
        assert_eq!(r.subscriptions.len(), 1);
        assert!(r.subscriptions[0].to_ns.is_some());
        assert!(r.published.is_empty());
        assert!(r.publish_lag.is_none(), "nothing published, no lag");
        let mesh = r.mesh.expect("the mesh outcome is in the result");
        assert!(!mesh.meshed && mesh.mesh_ms.is_none());
        assert!(
            n.conn
                .seen
                .iter()
                .any(|m| matches!(m, NodeMsg::Ack { id: got, ok: true, .. } if *got == id))
        );
        assert_eq!(exit_code(&mut n).await, Some(0));
    })
    .await;
}

/// Asks for snapshots until `pick` accepts one.
async fn snapshot_until(
    node: &mut Node,
    pick: impl Fn(&testbed_contract::results::Snapshot) -> bool,
) {
    loop {
        let id = node.conn.next_id;
        node.conn.next_id += 1;
        node.conn
            .send(&OrchMsg::Command {
                id,
                cmd: Command::Report,
            })
            .await;
        let snap = node
            .conn
            .until(|m| match m {
                NodeMsg::Snapshot(s) => Some(s.clone()),
                _ => None,
            })
            .await;
        node.conn.ack_of(id).await;
        if pick(&snap) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn disconnect_and_reconnect() {
    limited(async {
        let mut nodes = start(2, Variant::Floodsub).await;
        let mut b = nodes.pop().unwrap();
        let mut a = nodes.pop().unwrap();
        a.conn
            .ok(Command::Connect {
                peers: vec![b.peer()],
            })
            .await;
        a.conn
            .ok(Command::Disconnect {
                peers: vec![b.peer()],
            })
            .await;
        snapshot_until(&mut a, |s| s.connected_peers == 0).await;
        snapshot_until(&mut b, |s| s.connected_peers == 0).await;
        let info = a
            .conn
            .ok(Command::Connect {
                peers: vec![b.peer()],
            })
            .await;
        assert_eq!(info["connected"], 1);
        snapshot_until(&mut b, |s| s.connected_peers == 1).await;
    })
    .await;
}

#[tokio::test]
async fn control_over_a_unix_socket() {
    limited(async {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let dir = std::env::temp_dir().join(format!("pubsub-node-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let mut child = common::spawn(&format!("unix:{}", path.display()), 4);
        let (stream, _) = listener.accept().await.unwrap();
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        let hello: NodeMsg =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert!(
            matches!(hello, NodeMsg::Hello { index: 4, .. }),
            "{hello:?}"
        );
        // Aborted before the run started: a bare result, then a clean exit.
        w.write_all(&testbed_contract::protocol::encode_line(&OrchMsg::Abort {
            reason: "not needed".into(),
        }))
        .await
        .unwrap();
        let mut last = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            last = Some(serde_json::from_str::<NodeMsg>(&line).unwrap());
        }
        match last {
            Some(NodeMsg::Result(r)) => {
                assert_eq!(r.exit, ExitReason::Aborted);
                assert!(r.error.unwrap().contains("not needed"));
                assert!(r.published.is_empty() && r.seen.is_empty());
                let states: Vec<_> = r.timeline.iter().map(|c| c.state).collect();
                assert_eq!(
                    states,
                    vec![NodeState::Starting, NodeState::Draining, NodeState::Done]
                );
            }
            other => panic!("expected a result last, got {other:?}"),
        }
        assert_eq!(child.wait().await.unwrap().code(), Some(0));
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
