//! Two real `pubsub-node` processes driven by a minimal scripted orchestrator over TCP:
//! connect, subscribe (waiting for the mesh), publish 5 messages each, finish, and check the
//! results — for gossipsub and for floodsub. Node 0 reports its deliveries (`delivered`) and
//! is pinged while it publishes.

mod common;

use common::{Conn, Node, SCENARIO_LIMIT, config, start_with};
use std::time::Duration;
use testbed_contract::histogram;
use testbed_contract::plan::Variant;
use testbed_contract::protocol::{Command, NodeConfig, NodeMsg, OrchMsg};
use testbed_contract::results::{ExitReason, NodeResult, NodeState, SeenFrom, Snapshot};

const MESSAGES: u32 = 5;

fn testbed_contract_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Asks for snapshots until the node has received `want` messages; returns that snapshot.
async fn wait_received(conn: &mut Conn, want: u64) -> Snapshot {
    loop {
        let id = conn.next_id;
        let received = {
            conn.send(&OrchMsg::Command {
                id,
                cmd: Command::Report,
            })
            .await;
            conn.next_id += 1;
            let snap = conn
                .until(|m| match m {
                    NodeMsg::Snapshot(s) => Some(s.clone()),
                    _ => None,
                })
                .await;
            conn.until(|m| matches!(m, NodeMsg::Ack { id: got, .. } if *got == id).then_some(()))
                .await;
            snap
        };
        if received.received >= want {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finish(node: &mut Node) -> NodeResult {
    let id = node.conn.next_id;
    node.conn
        .send(&OrchMsg::Command {
            id,
            cmd: Command::Finish,
        })
        .await;
    let result = node.conn.result().await;
    let status = node.child.wait().await.unwrap();
    assert!(status.success(), "node {} exited with {status}", node.index);
    assert!(
        node.conn
            .seen
            .iter()
            .any(|m| matches!(m, NodeMsg::Ack { id: got, ok: true, .. } if *got == id)),
        "finish was acknowledged"
    );
    result
}

async fn scenario(variant: Variant) {
    let nodes = start_with(2, |i| NodeConfig {
        report_deliveries: i == 0,
        ..config(i, variant)
    })
    .await;
    let [mut a, mut b]: [Node; 2] = nodes.try_into().ok().unwrap();

    // Connect: a dials b; b's dial finds the connection already there.
    let info = a
        .conn
        .ok(Command::Connect {
            peers: vec![b.peer()],
        })
        .await;
    assert_eq!(info["connected"], 1);
    b.conn
        .ok(Command::Connect {
            peers: vec![a.peer()],
        })
        .await;

    let subscribe = || Command::Subscribe {
        topics: vec!["t".into()],
        wait_mesh: true,
        mesh_timeout_ms: 20_000,
    };
    let (ia, ib) = tokio::join!(a.conn.ok(subscribe()), b.conn.ok(subscribe()));
    for info in [&ia, &ib] {
        assert!(info["mesh_ms"].is_u64(), "{info}");
        assert_eq!(info["meshed"], true, "{info}");
        assert_eq!(info["topics"]["t"]["mesh"], 1, "{info}");
        assert_eq!(info["topics"]["t"]["target"], 1, "{info}");
    }

    let publish = || Command::Publish {
        topic: "t".into(),
        count: MESSAGES,
        rate: Some(50.0),
        size: 256,
        peer_timeout_ms: 10_000,
    };
    // A ping while node 0 publishes is answered at once (before the publish ack, which
    // takes the 80 ms of the schedule).
    let ping_sent = testbed_contract_now_ns();
    a.conn.send(&OrchMsg::Ping { id: 77 }).await;
    let (pa, pb) = tokio::join!(a.conn.ok(publish()), b.conn.ok(publish()));
    assert_eq!(pa["published"], MESSAGES);
    assert_eq!(pb["published"], MESSAGES);
    let pongs: Vec<(u64, u64)> = a
        .conn
        .seen
        .iter()
        .filter_map(|m| match m {
            NodeMsg::Pong { id, at_ns } => Some((*id, *at_ns)),
            _ => None,
        })
        .collect();
    assert_eq!(pongs.len(), 1, "one pong");
    assert_eq!(pongs[0].0, 77);
    assert!(
        pongs[0].1 >= ping_sent,
        "the pong's clock reads after the ping was sent"
    );

    let (sa, sb) = tokio::join!(
        wait_received(&mut a.conn, MESSAGES.into()),
        wait_received(&mut b.conn, MESSAGES.into())
    );
    // Both still run: each knows the other's subscription. (After `finish` a node that ends
    // first disconnects, so the other's final snapshot may already count 0.)
    assert_eq!(sa.topics["t"].subscribed, 1, "{variant:?} node 0");
    assert_eq!(sb.topics["t"].subscribed, 1, "{variant:?} node 1");
    let (ra, rb) = tokio::join!(finish(&mut a), finish(&mut b));

    for (node, result, other) in [(&a, &ra, &b), (&b, &rb, &a)] {
        let who = format!("{variant:?} node {}", node.index);
        assert_eq!(result.index, node.index, "{who}");
        assert_eq!(result.peer_id, node.peer_id, "{who}");
        assert_eq!(result.exit, ExitReason::Finished, "{who}");
        assert_eq!(result.error, None, "{who}");
        assert_eq!(result.received, u64::from(MESSAGES), "{who}");
        assert_eq!(result.duplicates, 0, "{who}");
        assert_eq!(
            result.seen,
            vec![SeenFrom {
                origin: other.index,
                ranges: vec![[0, u64::from(MESSAGES) - 1]]
            }],
            "{who}"
        );
        assert_eq!(
            result.published.iter().map(|p| p.seq).collect::<Vec<_>>(),
            (0..u64::from(MESSAGES)).collect::<Vec<_>>(),
            "{who}"
        );
        assert!(result.published.iter().all(|p| p.topic == "t"), "{who}");
        assert_eq!(result.subscriptions.len(), 1, "{who}");
        assert_eq!(result.subscriptions[0].topic, "t", "{who}");

        assert_eq!(result.latency.len(), 1, "{who}");
        let group = [10u16, 11][other.index as usize];
        assert_eq!(result.latency[0].origin_group, group, "{who}");
        let h = histogram::decode(&result.latency[0].hdr).unwrap();
        assert_eq!(h.len(), u64::from(MESSAGES), "{who}");
        // Receive-time counts: every delivery once, in the origin's group, from the second of
        // the other node's first publish on.
        assert_eq!(result.received_over_time.len(), 1, "{who}");
        let over_time = &result.received_over_time[0];
        assert_eq!(over_time.origin_group, group, "{who}");
        assert_eq!(
            over_time.counts.iter().map(|&c| u64::from(c)).sum::<u64>(),
            u64::from(MESSAGES),
            "{who}"
        );
        let first_publish_ns = [&ra, &rb][other.index as usize].published[0].at_ns;
        // Paced publishing: each message's due time is on the 50/s schedule and not after
        // its send time; the lag histogram has one value per message.
        let due: Vec<u64> = result
            .published
            .iter()
            .map(|p| p.due_ns.expect("paced messages have a due time"))
            .collect();
        for (i, p) in result.published.iter().enumerate() {
            assert!(due[i] <= p.at_ns, "{who}: due after send");
            let step = (due[i] - due[0]) as i64 - i as i64 * 20_000_000;
            assert!(
                step.abs() <= 1_000,
                "{who}: message {i} due off schedule by {step} ns"
            );
        }
        let lag = histogram::decode(result.publish_lag.as_ref().expect("publish lag")).unwrap();
        assert_eq!(lag.len(), u64::from(MESSAGES), "{who}");
        // Receive − send: as many samples as receive − due, never larger.
        assert_eq!(result.latency_since_send.len(), 1, "{who}");
        let since_send = histogram::decode(&result.latency_since_send[0].hdr).unwrap();
        assert_eq!(since_send.len(), u64::from(MESSAGES), "{who}");
        assert!(
            since_send.lowest_equivalent(since_send.max()) <= h.highest_equivalent(h.max()),
            "{who}"
        );
        let mesh = result.mesh.as_ref().expect("mesh outcome");
        assert!(mesh.meshed && mesh.mesh_ms.is_some(), "{who}");
        // Deliveries are reported by node 0 only, once per message, as they happened.
        let delivered: Vec<(u32, u64, u64)> = node
            .conn
            .seen
            .iter()
            .filter_map(|m| match m {
                NodeMsg::Delivered { origin, seq, at_ns } => Some((*origin, *seq, *at_ns)),
                _ => None,
            })
            .collect();
        if node.index == 0 {
            assert_eq!(
                delivered.iter().map(|d| (d.0, d.1)).collect::<Vec<_>>(),
                (0..u64::from(MESSAGES)).map(|s| (1, s)).collect::<Vec<_>>(),
                "{who}"
            );
            let other_due = [&ra, &rb][other.index as usize].published[0]
                .due_ns
                .unwrap();
            assert!(delivered.iter().all(|d| d.2 >= other_due), "{who}");
        } else {
            assert!(delivered.is_empty(), "{who}: report_deliveries is off");
        }
        assert!(
            over_time.start_unix_s >= first_publish_ns / 1_000_000_000,
            "{who}"
        );
        eprintln!(
            "{who}: one-hop latency p50 {} µs, max {} µs; peak RSS {} KiB, final RSS {} KiB, \
             cpu {} ms, bytes in/out {:?}/{:?}, router duplicates {:?}",
            h.value_at_quantile(0.5),
            h.max(),
            result.peak_rss_bytes / 1024,
            result.final_rss_bytes / 1024,
            result.cpu_ns / 1_000_000,
            result.bytes_in,
            result.bytes_out,
            result.router_duplicates,
        );

        use NodeState::*;
        let expected = vec![
            Starting, Listening, Connected, Subscribed, Ready, Running, Draining, Done,
        ];
        let timeline: Vec<NodeState> = result.timeline.iter().map(|c| c.state).collect();
        assert_eq!(timeline, expected, "{who}");
        assert!(
            result.timeline.windows(2).all(|w| w[0].at_ns <= w[1].at_ns),
            "{who}"
        );
        // Every transition was also announced as it happened.
        assert_eq!(node.conn.states(), expected, "{who}");

        assert!(result.peak_rss_bytes >= result.final_rss_bytes && result.final_rss_bytes > 0);
        assert!(result.cpu_ns > 0);
        assert!(result.bytes_in.is_some_and(|b| b > 0), "{who}");
        assert!(result.bytes_out.is_some_and(|b| b > 0), "{who}");
        assert_eq!(
            result.router_duplicates.is_some(),
            variant == Variant::Gossipsub,
            "{who}"
        );
        let snap = result.last_snapshot.as_ref().expect("last snapshot");
        assert_eq!(snap.received, u64::from(MESSAGES));
        assert_eq!(snap.published, u64::from(MESSAGES));
        // Periodic snapshots flowed besides the ones asked for.
        assert!(
            node.conn
                .seen
                .iter()
                .any(|m| matches!(m, NodeMsg::Snapshot(_))),
            "{who}"
        );
    }
}

#[tokio::test]
async fn gossipsub_two_nodes() {
    tokio::time::timeout(SCENARIO_LIMIT, scenario(Variant::Gossipsub))
        .await
        .expect("the gossipsub scenario finishes");
}

#[tokio::test]
async fn floodsub_two_nodes() {
    tokio::time::timeout(SCENARIO_LIMIT, scenario(Variant::Floodsub))
        .await
        .expect("the floodsub scenario finishes");
}
