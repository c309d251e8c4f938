//! `security: plaintext`: two plaintext nodes connect and exchange messages; a plaintext node
//! cannot connect to a noise node, and its connect ack names the security mismatch.

mod common;

use common::{Node, SCENARIO_LIMIT, config, start_with};
use testbed_contract::plan::{Security, Variant};
use testbed_contract::protocol::{Command, NodeConfig, NodeMsg, OrchMsg};
use testbed_contract::results::ExitReason;

fn with_security(index: u32, security: Security) -> NodeConfig {
    NodeConfig {
        security,
        ..config(index, Variant::Gossipsub)
    }
}

async fn finish(n: &mut Node) {
    let id = n.conn.next_id;
    n.conn
        .send(&OrchMsg::Command {
            id,
            cmd: Command::Finish,
        })
        .await;
    let r = n.conn.result().await;
    assert_eq!(r.exit, ExitReason::Finished);
    assert!(n.child.wait().await.unwrap().success());
}

#[tokio::test]
async fn plaintext_nodes_exchange_messages() {
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let nodes = start_with(2, |i| with_security(i, Security::Plaintext)).await;
        let [mut a, mut b]: [Node; 2] = nodes.try_into().ok().unwrap();
        let info = a
            .conn
            .ok(Command::Connect {
                peers: vec![b.peer()],
            })
            .await;
        assert_eq!(info["connected"], 1);
        let subscribe = || Command::Subscribe {
            topics: vec!["t".into()],
            wait_mesh: true,
            mesh_timeout_ms: 20_000,
        };
        let (ia, ib) = tokio::join!(a.conn.ok(subscribe()), b.conn.ok(subscribe()));
        assert_eq!(ia["meshed"], true, "{ia}");
        assert_eq!(ib["meshed"], true, "{ib}");
        let info = a
            .conn
            .ok(Command::Publish {
                topic: "t".into(),
                count: 3,
                rate: None,
                size: 100,
                peer_timeout_ms: 10_000,
            })
            .await;
        assert_eq!(info["published"], 3);
        // Every message arrives (signed and verified over the unencrypted connection).
        loop {
            b.conn
                .send(&OrchMsg::Command {
                    id: 900,
                    cmd: Command::Report,
                })
                .await;
            let received = b
                .conn
                .until(|m| match m {
                    NodeMsg::Snapshot(s) => Some(s.received),
                    _ => None,
                })
                .await;
            b.conn.ack_of(900).await;
            if received == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        finish(&mut a).await;
        finish(&mut b).await;
    })
    .await
    .expect("the scenario finishes");
}

#[tokio::test]
async fn plaintext_to_noise_fails_naming_the_security_mismatch() {
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let nodes = start_with(2, |i| {
            with_security(i, [Security::Plaintext, Security::Noise][i as usize])
        })
        .await;
        let [mut plain, mut noise]: [Node; 2] = nodes.try_into().ok().unwrap();
        let (plain_peer, noise_peer) = (plain.peer(), noise.peer());
        for (from, to, mine) in [
            (&mut plain, noise_peer, "plaintext"),
            (&mut noise, plain_peer, "noise"),
        ] {
            let (ok, error, info) = from
                .conn
                .command(Command::Connect { peers: vec![to] })
                .await;
            assert!(!ok, "a {mine} node connected to the other security");
            assert_eq!(info["failed"], 1);
            let error = error.unwrap();
            eprintln!("{mine} → other: {error}");
            assert!(
                error.contains("security") && error.contains(&format!("this node uses {mine}")),
                "{error}"
            );
        }
        finish(&mut plain).await;
        finish(&mut noise).await;
    })
    .await
    .expect("the scenario finishes");
}
