//! The sync service's barriers, node side: signal entry into a barrier, then wait for the
//! orchestrator's `released`.

use crate::control::ControlTx;
use std::collections::HashMap;
use testbed_contract::protocol::NodeMsg;
use tokio::sync::oneshot;

#[derive(Debug, Default)]
pub struct Barriers {
    waiting: HashMap<String, Vec<oneshot::Sender<u32>>>,
}

impl Barriers {
    /// Signals entry into `barrier` (released when `target` nodes have signalled) and returns
    /// a receiver that resolves with the count the orchestrator reports on release. The
    /// receiver can be awaited in a `select!` branch next to the swarm.
    #[allow(dead_code, reason = "no command synchronises on the node side yet")]
    pub fn signal(&mut self, tx: &ControlTx, barrier: &str, target: u32) -> oneshot::Receiver<u32> {
        let (done, wait) = oneshot::channel();
        self.waiting
            .entry(barrier.to_owned())
            .or_default()
            .push(done);
        tx.send(&NodeMsg::Signal {
            barrier: barrier.to_owned(),
            target,
        });
        wait
    }

    /// The orchestrator released `barrier`; false if nobody here was waiting for it.
    pub fn on_released(&mut self, barrier: &str, count: u32) -> bool {
        match self.waiting.remove(barrier) {
            Some(waiters) => {
                for w in waiters {
                    let _ = w.send(count);
                }
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    #[tokio::test]
    async fn signal_then_release() {
        let (a, b) = tokio::io::duplex(1024);
        let tx = ControlTx::for_test(a);
        let mut barriers = Barriers::default();
        let wait = barriers.signal(&tx, "warmed-up", 3);
        let mut lines = tokio::io::BufReader::new(b).lines();
        let line = lines.next_line().await.unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<NodeMsg>(&line).unwrap(),
            NodeMsg::Signal {
                barrier: "warmed-up".into(),
                target: 3
            }
        );
        assert!(!barriers.on_released("other", 1));
        assert!(barriers.on_released("warmed-up", 3));
        assert_eq!(wait.await.unwrap(), 3);
        assert!(tx.close(std::time::Duration::from_secs(1)).await);
    }
}
